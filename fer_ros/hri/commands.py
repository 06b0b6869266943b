"""Expression -> HRI command mapping with confirmation times, priorities, hysteresis, latching and HOLD.

The mapper turns the per-frame, per-face smoothed expressions (``FaceResult``) into a sparse stream of
``Command`` objects: one when the command changes, plus a heartbeat repeating the current command every
``heartbeat_period_s``. The mapping and every threshold come from ``config/commands.yaml``, read and
validated by ``fer_ros.hri.command_config`` (docs/commands.md has the full semantics and a timeline).
In short:

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
  command clock of fer_ros.hri.stamps, which also decides about out-of-order frames and clock jumps;
  a clock jump therefore never reaches the mapper, and a latched STOP stays latched through it).
  Evidence older than ``hold_timeout_s`` (a gap in frames) is discarded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from fer_ros.core.types import Command, FaceResult
from fer_ros.hri.command_config import HOLD, PROCEED, STOP, CommandConfig

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
        decided before the mapper, by fer_ros.hri.stamps.StampPolicy (the one stamp policy).

        Raises:
            ValueError: a non-finite stamp, or one older than the newest accepted.
        """
        s = self._s
        if not math.isfinite(stamp) or (s.newest is not None and stamp < s.newest):
            raise ValueError(f'CommandMapper: stamp {stamp!r} is not finite or older than the newest {s.newest!r}; '
                             'order stamps with fer_ros.hri.stamps.StampPolicy first')
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
