"""Expression -> HRI command mapping with confirmation times, priorities, hysteresis, latching and HOLD.

The mapper turns the per-frame, per-face smoothed expressions (``FaceResult``) into a sparse stream of
``Command`` objects: one when the command changes, plus a heartbeat repeating the current command every
``heartbeat_period_s``. The mapping and every threshold come from ``config/commands.yaml``
(docs/commands.md has the full semantics and a timeline). In short:

- **Evidence.** Each face contributes its winning expression and confidence. An expression *runs*
  from the first frame where some face shows it with confidence >= the rule's ``min_confidence`` and
  keeps running while some face shows it with confidence >= ``min_confidence - hysteresis``. A frame
  without that evidence ends the run.
- **Confirmation.** A rule is *confirmed* once its run has lasted ``confirm_s``; its command is then a
  candidate. HOLD is a candidate once no face has been seen for ``hold_timeout_s``.
- **Choice.** With no current command, the highest-priority candidate is emitted. A higher-priority
  candidate pre-empts the current command at once. A lower- or equal-priority candidate replaces a
  non-latched current command only when nothing supports the current one any more (no running rule
  maps to it), so a second, calmer face cannot override an active ASSIST request.
- **Latching.** Commands with ``release_s`` (STOP, PAUSE, HOLD by default) are latched: besides
  pre-emption they only end when, for ``release_s`` without interruption, a face is visible and no
  running rule maps to them. On release the highest-priority candidate follows, or **PROCEED** when
  there is none and no expression is still confirming (then its confirmation decides). So STOP is
  never cleared by one noisy frame, nor by the operator leaving the view.
- **Anti-chatter.** Besides the confidence hysteresis, a change (except to STOP) waits until
  ``min_dwell_s`` after the previous change.
- **Time.** Stamps are seconds on one clock for ``update`` and ``tick``, never running backwards (the
  command clock of fer_ros.core.stamps, which also decides about out-of-order frames and clock jumps;
  a clock jump therefore never reaches the mapper, and a latched STOP stays latched through it).
  Evidence older than ``hold_timeout_s`` (a gap in frames) is discarded.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from fer_ros.core.labels import EXPRESSIONS, canonical
from fer_ros.core.types import Command, FaceResult
from fer_ros.core.validate import range_problem

STOP = 'STOP'
PAUSE = 'PAUSE'
PROCEED = 'PROCEED'
CONFIRM = 'CONFIRM'
ASSIST = 'ASSIST'
REJECT = 'REJECT'
HOLD = 'HOLD'
# The HriCommand message constants.
HRI_COMMANDS: tuple[str, ...] = (STOP, PAUSE, PROCEED, CONFIRM, ASSIST, REJECT, HOLD)
# Commands the mapper itself emits, so every configuration must declare them.
REQUIRED_COMMANDS: tuple[str, ...] = (STOP, PROCEED, HOLD)

_CUSTOM_WORD = re.compile(r'^[A-Z][A-Z0-9_]*$')
_TOP_KEYS = ('version', 'heartbeat_period_s', 'hold_timeout_s', 'min_dwell_s', 'hysteresis', 'clock_reset_s',
             'commands', 'rules')
_COMMAND_KEYS = ('priority', 'min_confidence', 'confirm_s', 'release_s', 'custom')
_RULE_KEYS = ('command', 'min_confidence', 'confirm_s')


class CommandConfigError(ValueError):
    """commands.yaml is invalid; the message reads ``<file>: <key path>: <problem>``."""

    def __init__(self, path: str, problem: str, source: str = '') -> None:
        self.path = path
        self.problem = problem
        self.source = source
        super().__init__(f'{source}: {path}: {problem}' if source else f'{path}: {problem}')

    def with_source(self, source: str) -> 'CommandConfigError':
        return CommandConfigError(self.path, self.problem, source)


def _number(path: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> float:
    problem = range_problem(value, low, high, low_open=low_open)
    if problem:
        raise CommandConfigError(path, problem)
    return float(value)


@dataclass(frozen=True)
class CommandSpec:
    """Settings of one command word (``commands.<NAME>`` in the YAML)."""

    name: str
    priority: int
    min_confidence: float = 0.6       # default for rules mapping to this command
    confirm_s: float = 0.5            # default for rules mapping to this command
    release_s: float | None = None    # set: latched (see module docstring)
    custom: bool = False              # a word outside HRI_COMMANDS, declared on purpose

    def __post_init__(self) -> None:
        where = f'commands.{self.name}'
        if self.custom:
            if not isinstance(self.name, str) or not _CUSTOM_WORD.match(self.name):
                raise CommandConfigError(where, 'custom command words are UPPER_CASE letters, digits and _')
        elif self.name not in HRI_COMMANDS:
            raise CommandConfigError(where, f'unknown command; known: {list(HRI_COMMANDS)} '
                                            '(declare a new word with custom: true)')
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or not 0 <= self.priority <= 255:
            raise CommandConfigError(f'{where}.priority', f'must be an int in 0..255, got {self.priority!r}')
        _number(f'{where}.min_confidence', self.min_confidence, 0.0, 1.0)
        _number(f'{where}.confirm_s', self.confirm_s, 0.0)
        if self.release_s is not None:
            _number(f'{where}.release_s', self.release_s, 0.0, low_open=True)

    @property
    def latched(self) -> bool:
        return self.release_s is not None


def _check_expression(expression: Any) -> None:
    if expression not in EXPRESSIONS:
        hint = ''
        try:
            hint = f" (did you mean '{canonical(str(expression))}'?)"
        except ValueError:
            pass
        raise CommandConfigError(f'rules.{expression}', f'unknown expression{hint}; known: {list(EXPRESSIONS)}')


@dataclass(frozen=True)
class Rule:
    """One expression's mapping (``rules.<expression>``), with the effective thresholds."""

    expression: str
    command: str | None               # None: no change
    min_confidence: float = 0.6
    confirm_s: float = 0.5

    def __post_init__(self) -> None:
        where = f'rules.{self.expression}'
        _check_expression(self.expression)
        _number(f'{where}.min_confidence', self.min_confidence, 0.0, 1.0)
        _number(f'{where}.confirm_s', self.confirm_s, 0.0)


@dataclass(frozen=True)
class CommandConfig:
    """The validated contents of commands.yaml (build it with ``load_command_config`` or ``parse_command_config``).

    commands: command word -> CommandSpec; rules: expression -> Rule (expressions not listed: no change).
    Times in seconds; ``hysteresis`` in confidence units (0..0.5).
    """

    commands: dict[str, CommandSpec]
    rules: dict[str, Rule]
    heartbeat_period_s: float = 1.0
    hold_timeout_s: float = 2.0
    min_dwell_s: float = 1.0
    hysteresis: float = 0.1
    clock_reset_s: float = 1.0
    source: str = ''                  # the file it was read from ('' when built in code)

    def __post_init__(self) -> None:
        _number('heartbeat_period_s', self.heartbeat_period_s, 0.0, low_open=True)
        _number('hold_timeout_s', self.hold_timeout_s, 0.0, low_open=True)
        _number('min_dwell_s', self.min_dwell_s, 0.0)
        _number('hysteresis', self.hysteresis, 0.0, 0.5)
        _number('clock_reset_s', self.clock_reset_s, 0.0, low_open=True)
        for name, spec in self.commands.items():
            if spec.name != name:
                raise CommandConfigError(f'commands.{name}', f'entry is named {spec.name!r}')
        for name in REQUIRED_COMMANDS:
            if name not in self.commands:
                raise CommandConfigError('commands', f'{name} must be declared (the mapper emits it)')
        by_priority: dict[int, str] = {}
        for name, spec in self.commands.items():
            if spec.priority in by_priority:
                raise CommandConfigError(f'commands.{name}.priority',
                                         f'{spec.priority} is also the priority of {by_priority[spec.priority]}; '
                                         'priorities must be unique')
            by_priority[spec.priority] = name
        stop = self.commands[STOP]
        if max(by_priority) != stop.priority:
            raise CommandConfigError(f'commands.{by_priority[max(by_priority)]}.priority',
                                     f'{max(by_priority)} is above STOP ({stop.priority}); STOP must be the highest')
        if not stop.latched:
            raise CommandConfigError('commands.STOP.release_s', 'required: STOP is latched and released only after '
                                                                'this long without a face showing it')
        for expression, rule in self.rules.items():
            if rule.expression != expression:
                raise CommandConfigError(f'rules.{expression}', f'entry is for {rule.expression!r}')
            if rule.command is None:
                continue
            if rule.command not in self.commands:
                raise CommandConfigError(f'rules.{expression}.command', f'{rule.command!r} is not declared under '
                                                                        f'commands; declared: {list(self.commands)}')
            if rule.command == HOLD:
                raise CommandConfigError(f'rules.{expression}.command', 'HOLD cannot be mapped from an expression '
                                                                        '(it means no face is seen)')
        stop_rules = [r for r in self.rules.values() if r.command == STOP]
        other_rules = [r for r in self.rules.values() if r.command not in (None, STOP)]
        if stop_rules and other_rules:
            slowest_stop = max(stop_rules, key=lambda r: r.confirm_s)
            for rule in other_rules:
                if rule.confirm_s < slowest_stop.confirm_s:
                    raise CommandConfigError(
                        f'rules.{rule.expression}.confirm_s',
                        f'{rule.confirm_s} is faster than STOP via {slowest_stop.expression} '
                        f'({slowest_stop.confirm_s}); STOP must be confirmed fastest')

    def priority(self, command: str) -> int:
        """Priority 0..255 of a declared command word (KeyError for an undeclared one)."""
        return self.commands[command].priority

    def command_for(self, expression: str) -> str | None:
        """The command an expression maps to, or None (no change, or not listed)."""
        rule = self.rules.get(expression)
        return rule.command if rule is not None else None


def parse_command_config(data: Any, source: str = 'commands.yaml') -> CommandConfig:
    """Validate parsed YAML (a dict) and build the CommandConfig.

    Raises:
        CommandConfigError (a ValueError): the message names ``source`` and the bad key, e.g.
            ``commands.yaml: rules.scared.min_confidence: must be in 0..1, got 1.5``.
    """
    try:
        return _parse(data, source)
    except CommandConfigError as exc:
        raise exc.with_source(source) from None


def _mapping(path: str, value: Any, known: tuple[str, ...] | None) -> dict:
    """``value`` must be a mapping whose keys are all in ``known`` (any keys when None); '' = top level."""
    if not isinstance(value, dict):
        raise CommandConfigError(path or '(top level)', f'must be a mapping, got {type(value).__name__}')
    if known is not None:
        for key in value:
            if key not in known:
                raise CommandConfigError(f'{path}.{key}' if path else str(key), f'unknown key; known: {list(known)}')
    return value


def _parse(data: Any, source: str) -> CommandConfig:
    top = _mapping('', data, _TOP_KEYS)
    version = top.get('version', 1)
    if version != 1 or isinstance(version, bool):
        raise CommandConfigError('version', f'unsupported version {version!r}; this fer_ros reads version 1')
    for key in ('commands', 'rules'):
        if key not in top:
            raise CommandConfigError(key, 'missing')

    commands: dict[str, CommandSpec] = {}
    for name, entry in _mapping('commands', top['commands'], None).items():
        entry = _mapping(f'commands.{name}', {} if entry is None else entry, _COMMAND_KEYS)
        if 'priority' not in entry:
            raise CommandConfigError(f'commands.{name}.priority', 'missing')
        custom = entry.get('custom', False)
        if not isinstance(custom, bool):
            raise CommandConfigError(f'commands.{name}.custom', f'must be true or false, got {custom!r}')
        if name == HOLD and ('min_confidence' in entry or 'confirm_s' in entry):
            bad = 'min_confidence' if 'min_confidence' in entry else 'confirm_s'
            raise CommandConfigError(f'commands.HOLD.{bad}', 'HOLD is raised by hold_timeout_s, not by an expression')
        commands[str(name)] = CommandSpec(
            name=str(name), priority=entry['priority'],
            min_confidence=entry.get('min_confidence', CommandSpec.min_confidence),
            confirm_s=entry.get('confirm_s', CommandSpec.confirm_s),
            release_s=entry.get('release_s'), custom=custom)

    rules: dict[str, Rule] = {}
    for expression, entry in _mapping('rules', top['rules'], None).items():
        where = f'rules.{expression}'
        _check_expression(expression)
        entry = _mapping(where, entry, _RULE_KEYS)
        if 'command' not in entry:
            raise CommandConfigError(f'{where}.command', 'missing (use null for no change)')
        command = entry['command']
        if command is not None and not isinstance(command, str):
            raise CommandConfigError(f'{where}.command', f'must be a command word or null, got {command!r}')
        spec = commands.get(command) if command is not None else None
        if command is not None and spec is None:
            if command in HRI_COMMANDS or _CUSTOM_WORD.match(command):
                raise CommandConfigError(f'{where}.command', f'{command!r} is not declared under commands; '
                                                             f'declared: {list(commands)}')
            raise CommandConfigError(f'{where}.command', f'unknown command {command!r}; known: {list(HRI_COMMANDS)}')
        rules[str(expression)] = Rule(
            expression=str(expression), command=command,
            min_confidence=entry.get('min_confidence', spec.min_confidence if spec else CommandSpec.min_confidence),
            confirm_s=entry.get('confirm_s', spec.confirm_s if spec else CommandSpec.confirm_s))

    return CommandConfig(
        commands=commands, rules=rules,
        heartbeat_period_s=top.get('heartbeat_period_s', CommandConfig.heartbeat_period_s),
        hold_timeout_s=top.get('hold_timeout_s', CommandConfig.hold_timeout_s),
        min_dwell_s=top.get('min_dwell_s', CommandConfig.min_dwell_s),
        hysteresis=top.get('hysteresis', CommandConfig.hysteresis),
        clock_reset_s=top.get('clock_reset_s', CommandConfig.clock_reset_s),
        source=source)


def load_command_config(path: str | None = None) -> CommandConfig:
    """Read and validate a commands YAML file; ``None`` (or '') reads the packaged config/commands.yaml.

    Raises:
        FileNotFoundError: no file at ``path`` (or no packaged file; the message lists the places searched).
        CommandConfigError (a ValueError): invalid YAML or contents; the message names the file and key.
    """
    import os

    import yaml

    if not path:
        from fer_ros.core.paths import find_config_file

        path = find_config_file('commands.yaml')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'commands file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise CommandConfigError('(yaml)', f'not valid YAML: {exc}', path) from None
    return parse_command_config(data, source=path)


# --- the mapper ----------------------------------------------------------------------------------


@dataclass
class _Run:
    """A rule's continuous evidence (internal)."""

    onset: float | None = None        # stamp of the first frame of the current run; None: not running
    face_id: str = ''                 # strongest face showing the expression in the latest frame
    confidence: float = 0.0


@dataclass
class _Candidate:
    command: str
    priority: int
    face_id: str = ''
    expression: str = ''
    confidence: float = 0.0


@dataclass
class _State:
    newest: float | None = None               # newest stamp accepted (update or tick)
    last_frame: float | None = None           # stamp of the last processed frame
    last_face: float | None = None            # last frame with a face (or the start / a clock reset)
    current: Command | None = None
    changed_at: float | None = None
    last_emit: float | None = None
    release_since: float | None = None        # start of the current release condition run (latched command)
    runs: dict[str, _Run] = field(default_factory=dict)


class CommandMapper:
    """Turns per-frame face results into HRI commands (see the module docstring for the rules).

    Call ``update`` for every processed frame and ``tick`` from a timer (a few Hz) so HOLD and
    heartbeats happen when frames stop arriving. Both return the commands to publish now (usually none,
    at most one): a change (``heartbeat=False``) or a heartbeat (``heartbeat=True``).
    """

    def __init__(self, config: CommandConfig) -> None:
        if not isinstance(config, CommandConfig):
            raise ValueError(f'config must be a CommandConfig, got {type(config).__name__}')
        self.config = config
        self._active_rules = {e: r for e, r in config.rules.items() if r.command is not None}
        self._s = _State()

    @property
    def current(self) -> Command | None:
        """The command in force (as last emitted on change), or None before the first one."""
        return self._s.current

    def reset(self, keep_command: bool = False) -> None:
        """Forget evidence, timers and the stamp history; counters are kept.

        keep_command: keep the command in force (a latched STOP stays latched and needs its full
            release time again; the heartbeat goes on) - what a clock jump needs. False: back to the
            start state, with no command.
        """
        self._s = _State(current=self._s.current if keep_command else None)

    def update(self, faces: list[FaceResult], stamp: float) -> list[Command]:
        """Process one frame's confirmed faces (possibly none). Returns the commands to publish."""
        stamp = float(stamp)
        if not self._accept(stamp):
            return []
        s, cfg = self._s, self.config
        if s.last_frame is not None and stamp - s.last_frame >= cfg.hold_timeout_s:
            self._forget_evidence()
        s.last_frame = stamp
        if faces:
            s.last_face = stamp

        strongest: dict[str, FaceResult] = {}
        for face in faces:
            if face.expression in self._active_rules:
                best = strongest.get(face.expression)
                if best is None or face.confidence > best.confidence:
                    strongest[face.expression] = face
        for expression, rule in self._active_rules.items():
            run = s.runs.setdefault(expression, _Run())
            face = strongest.get(expression)
            conf = face.confidence if face is not None else 0.0
            if face is not None and (conf >= rule.min_confidence or
                                     (run.onset is not None and conf >= rule.min_confidence - cfg.hysteresis)):
                if run.onset is None:
                    run.onset = stamp
                run.face_id, run.confidence = face.face_id, conf
            else:
                s.runs[expression] = _Run()

        if s.current is not None and self._latched(s.current.command):
            if faces and not self._supported(s.current.command, bool(faces)):
                if s.release_since is None:
                    s.release_since = stamp
            else:
                s.release_since = None
        return self._decide(stamp, faces)

    def tick(self, stamp: float) -> list[Command]:
        """Advance time without a frame (timer). Emits HOLD when due and heartbeats."""
        stamp = float(stamp)
        if not self._accept(stamp):
            return []
        s = self._s
        if s.last_frame is not None and stamp - s.last_frame >= self.config.hold_timeout_s:
            self._forget_evidence()
        return self._decide(stamp, None)

    # --- internals -------------------------------------------------------------------------------

    def _accept(self, stamp: float) -> bool:
        """Stamp bookkeeping. Stamps must never run backwards: ordering, clock jumps and cameras are
        decided before the mapper, by fer_ros.core.stamps.StampPolicy (the one stamp policy).

        Raises:
            ValueError: a non-finite stamp, or one older than the newest accepted.
        """
        s = self._s
        if not math.isfinite(stamp) or (s.newest is not None and stamp < s.newest):
            raise ValueError(f'CommandMapper: stamp {stamp!r} is not finite or older than the newest {s.newest!r}; '
                             'order stamps with fer_ros.core.stamps.StampPolicy first')
        if s.newest is None:
            s.last_face = stamp
            if s.current is not None:  # kept by reset(keep_command=True): its timers start now
                s.changed_at = s.last_emit = stamp
        s.newest = stamp
        return True

    def _forget_evidence(self) -> None:
        self._s.runs.clear()
        self._s.release_since = None

    def _latched(self, command: str) -> bool:
        return self.config.commands[command].latched

    def _supported(self, command: str, faces_visible: bool) -> bool:
        """Some running rule maps to ``command`` (HOLD: no face visible)."""
        if command == HOLD:
            return not faces_visible
        return any(run.onset is not None and self._active_rules[e].command == command
                   for e, run in self._s.runs.items())

    def _candidates(self, stamp: float, frame: bool) -> dict[str, _Candidate]:
        s, cfg = self._s, self.config
        found: dict[str, _Candidate] = {}
        if frame:
            for expression, run in s.runs.items():
                rule = self._active_rules[expression]
                if run.onset is None or stamp - run.onset < rule.confirm_s:
                    continue
                best = found.get(rule.command)
                if best is None or run.confidence > best.confidence:
                    found[rule.command] = _Candidate(rule.command, cfg.priority(rule.command), run.face_id,
                                                     expression, run.confidence)
        if stamp - s.last_face >= cfg.hold_timeout_s:
            found[HOLD] = _Candidate(HOLD, cfg.priority(HOLD))
        return found

    def _decide(self, stamp: float, faces: list[FaceResult] | None) -> list[Command]:
        s, cfg = self._s, self.config
        frame = faces is not None
        candidates = self._candidates(stamp, frame)
        current = s.current
        target: _Candidate | None = None
        if current is None:
            target = max(candidates.values(), key=lambda c: c.priority, default=None)
        else:
            others = [c for c in candidates.values() if c.command != current.command]
            best = max(others, key=lambda c: c.priority, default=None)
            if best is not None and best.priority > current.priority:
                target = best
            elif self._latched(current.command):
                release_s = cfg.commands[current.command].release_s
                if frame and s.release_since is not None and stamp - s.release_since >= release_s:
                    # An expression still confirming will decide what follows: no PROCEED just before it.
                    pending = any(run.onset is not None for run in s.runs.values())
                    target = best or (None if pending else self._proceed(faces))
            elif best is not None and not self._supported(current.command, bool(faces) if frame else False):
                target = best

        if target is not None and (current is None or target.command != current.command):
            dwelling = s.changed_at is not None and stamp - s.changed_at < cfg.min_dwell_s
            if target.command == STOP or not dwelling:
                command = Command(command=target.command, priority=target.priority, source_face_id=target.face_id,
                                  expression=target.expression, confidence=float(target.confidence),
                                  heartbeat=False, stamp=stamp)
                s.current, s.changed_at, s.last_emit, s.release_since = command, stamp, stamp, None
                return [command]
        if s.current is not None and stamp - s.last_emit >= cfg.heartbeat_period_s:
            s.last_emit = stamp
            return [Command(command=s.current.command, priority=s.current.priority,
                            source_face_id=s.current.source_face_id, expression=s.current.expression,
                            confidence=s.current.confidence, heartbeat=True, stamp=stamp)]
        return []

    def _proceed(self, faces: list[FaceResult]) -> _Candidate:
        # The face in view is named, but no expression: a Command's expression is always one that maps to
        # the command (PROCEED comes from the release time, not from an expression).
        face = max(faces, key=lambda f: f.confidence)
        return _Candidate(PROCEED, self.config.priority(PROCEED), face.face_id)
