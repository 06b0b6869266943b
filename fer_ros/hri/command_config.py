"""commands.yaml: the expression -> HRI command schema, validated (``load_command_config``).

The command words and their priorities, confirmation and release times, the rules mapping expressions
to commands, and the global timings; every error names the file and the key path. The mapper that
applies a configuration frame by frame is ``fer_ros.hri.commands`` (semantics: docs/commands.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fer_ros.core.labels import EXPRESSIONS, canonical
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
                if rule.command in HRI_COMMANDS or _CUSTOM_WORD.match(rule.command):
                    raise CommandConfigError(f'rules.{expression}.command', f'{rule.command!r} is not declared '
                                             f'under commands; declared: {list(self.commands)}')
                raise CommandConfigError(f'rules.{expression}.command',
                                         f'unknown command {rule.command!r}; known: {list(HRI_COMMANDS)}')
            if rule.command == HOLD:
                raise CommandConfigError(f'rules.{expression}.command', 'HOLD cannot be mapped from an expression '
                                                                        '(it means no face is seen)')
        stop_rules = [r for r in self.rules.values() if r.command == STOP]
        if not any(r.min_confidence < 1.0 for r in stop_rules):
            raise CommandConfigError('rules', 'no expression maps to STOP with a min_confidence below 1: a '
                                              'frightened face could never stop the robot (map at least scared '
                                              'to STOP)')
        other_rules = [r for r in self.rules.values() if r.command not in (None, STOP)]
        if other_rules:
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
        spec = commands.get(command) if command is not None else None   # None: undeclared (CommandConfig says so)
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
        from fer_ros.util.paths import find_config_file

        path = find_config_file('commands.yaml')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'commands file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise CommandConfigError('(yaml)', f'not valid YAML: {exc}', path) from None
    return parse_command_config(data, source=path)
