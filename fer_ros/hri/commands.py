"""Expression -> HRI command mapping with confirmation times, priorities, hysteresis, latching and HOLD.

The mapper turns the per-frame, per-face smoothed expressions (``FaceResult``) into a sparse stream of
``Command`` objects: one when the command changes, plus a heartbeat repeating the current command every
``heartbeat_period_s``. The mapping and every threshold come from ``config/commands.yaml``, read and
validated by ``fer_ros.hri.command_config`` (docs/commands.md has the full semantics and a timeline).
In short:

- **Faces.** Each frame brings the faces the tracker weighs: *tracked* faces (published, detected in
  this frame), *tentative* ones (detected, not yet published) and *coasting* ones (published, missed
  in this frame for at most the tracker's ``coast_s``, with their last smoothed state). Every one of
  them is evidence; a missed detection therefore never ends a run. Only tracked faces are *visible*
  (a face in view for HOLD, for releasing a latched command, for PROCEED), and a command needs a
  tracked or coasting face supporting it (a face that was never published cannot command).
- **Evidence, per command.** STOP, whatever a face's winning expression: the smoothed probabilities
  of every expression mapped to STOP, each counted in units of its rule's ``min_confidence``, add up to
  at least 1 (``sum p_e / min_confidence_e >= 1``; with one STOP expression simply
  ``p >= min_confidence``). A frightened face whose winner wobbles between scared and surprised keeps
  supporting STOP. Every other command: the face's winning expression maps to it with a confidence
  >= the rule's ``min_confidence`` (argmax), and the face may command (``FaceResult.may_command``:
  attending, and enrolled under ``command_authority: enrolled``; fer_ros.hri.people). STOP is taken
  from every face, attending or not, enrolled or not. A command *runs* from the first frame in which some face
  supports it and keeps running while some face supports it at the hysteresis level (every
  ``min_confidence`` lowered by ``hysteresis``); a frame without that support ends the run.
- **Confirmation.** A command is *confirmed* once its run has lasted the ``confirm_s`` of the
  expression supporting it most (for STOP, the one contributing most to the sum); it is then a
  candidate. HOLD is a candidate once no face has been visible for ``hold_timeout_s``.
- **Choice.** With no current command, the highest-priority candidate is emitted. A higher-priority
  candidate pre-empts the current command at once. A lower- or equal-priority candidate replaces a
  non-latched current command only when nothing supports the current one any more (its run ended),
  so a second, calmer face cannot override an active ASSIST request.
- **Latching.** Commands with ``release_s`` (STOP, PAUSE, HOLD by default) are latched: besides
  pre-emption they only end when, for ``release_s`` without interruption, a face is visible and the
  command's run is over (for STOP: no face, coasting ones included, gives STOP evidence at the
  hysteresis level). On release the highest-priority candidate follows, or **PROCEED** when there is
  none and no command is still confirming (then its confirmation decides). So STOP is never cleared by
  one noisy frame, by a wobbling winner, nor by the operator leaving the view.
- **Anti-chatter.** Besides the confidence hysteresis, a change (except to STOP) waits until
  ``min_dwell_s`` after the previous change.
- **Forced HOLD** (``hold``): the node is not looking (activation, a stalled frame, deactivation,
  shutdown): HOLD at once, see ``hold``.
- **Time.** Stamps are seconds on one clock for ``update``, ``tick`` and ``hold``, never running
  backwards (the command clock of fer_ros.hri.stamps, which also decides about out-of-order frames and
  clock jumps; a clock jump therefore never reaches the mapper, and a latched STOP stays latched
  through it). Evidence older than ``hold_timeout_s`` (a gap in frames) is discarded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import TENTATIVE, TRACKED, Command, FaceResult
from fer_ros.hri.command_config import HOLD, PROCEED, STOP, CommandConfig, Rule

# Stamp differences are sums of frame periods: compare times with this slack, so that 6 frames of
# 1/30 s count as the 0.2 s they are (floating point makes them 0.19999999999999998).
TIME_EPS = 1e-6


@dataclass(frozen=True)
class _Support:
    """How one face supports one command in one frame (internal)."""

    face: FaceResult
    expression: str                   # the expression behind it (STOP: the largest contributor)
    confidence: float                 # the winner's probability (STOP: the summed STOP probability)
    confirm_s: float                  # the confirmation time of that expression's rule


@dataclass
class _Run:
    """A command's continuous evidence (internal)."""

    onset: float | None = None        # stamp of the first frame of the current run; None: not running
    face_id: str = ''                 # strongest supporting face in the latest frame
    expression: str = ''
    confidence: float = 0.0
    confirm_s: float = 0.0
    vouched: bool = False             # a tracked or coasting face supports it in the latest frame


@dataclass
class _Candidate:
    command: str
    priority: int
    face_id: str = ''
    expression: str = ''
    confidence: float = 0.0


@dataclass
class _State:
    newest: float | None = None               # newest stamp accepted (update, tick or hold)
    last_frame: float | None = None           # stamp of the last processed frame
    last_face: float | None = None            # last frame with a visible face (or the start / a clock reset)
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

    Args:
        config: the validated commands.yaml.
        labels: the model's class order (canonical words): ``FaceResult.probabilities`` are in it.
    Raises:
        ValueError: an expression that ``config`` maps to STOP is not among ``labels`` (the model could
            never show it, so STOP could be missed); the message names the labels and the rule.
    """

    def __init__(self, config: CommandConfig, labels: tuple[str, ...] = EXPRESSIONS) -> None:
        if not isinstance(config, CommandConfig):
            raise ValueError(f'config must be a CommandConfig, got {type(config).__name__}')
        self.config = config
        self.labels = tuple(labels)
        self._active_rules = {e: r for e, r in config.rules.items() if r.command is not None}
        stop_rules = [r for r in self._active_rules.values() if r.command == STOP]
        missing = [r.expression for r in stop_rules if r.expression not in self.labels]
        if missing:
            where = f' ({config.source})' if config.source else ''
            raise ValueError(f"the model's labels {list(self.labels)} lack {missing}, which the commands "
                             f"file{where} maps to STOP (rules.{missing[0]}): this model could never show "
                             'it, so a STOP could be missed; use a model with these labels or change the rules')
        self._stop_terms: list[tuple[Rule, int]] = [(r, self.labels.index(r.expression)) for r in stop_rules]
        self._commands = list(dict.fromkeys(r.command for r in self._active_rules.values() if r.command))
        self._s = _State()

    @property
    def current(self) -> Command | None:
        """The command in force (as last emitted on change), or None before the first one."""
        return self._s.current

    @property
    def newest(self) -> float | None:
        """The newest stamp accepted (None before the first): a later call must not be older."""
        return self._s.newest

    def reset(self, keep_command: bool = False) -> None:
        """Forget evidence, timers and the stamp history; counters are kept.

        keep_command: keep the command in force (a latched STOP stays latched and needs its full
            release time again; the heartbeat goes on) - what a clock jump needs. False: back to the
            start state, with no command.
        """
        self._s = _State(current=self._s.current if keep_command else None)

    def update(self, faces: list[FaceResult], stamp: float) -> list[Command]:
        """Process one frame's faces (tracked, tentative and coasting; possibly none).
        Returns the commands to publish."""
        stamp = float(stamp)
        self._accept(stamp)
        s = self._s
        if s.last_frame is not None and stamp - s.last_frame >= self.config.hold_timeout_s:
            self._forget_evidence()
        s.last_frame = stamp
        visible = [f for f in faces if f.tracking == TRACKED]
        if visible:
            s.last_face = stamp

        for command in self._commands:
            run = s.runs.setdefault(command, _Run())
            supports = [x for x in (self._support(f, command, run.onset is not None) for f in faces) if x]
            if not supports:
                s.runs[command] = _Run()
                continue
            # the source face: the strongest published one (a tentative face has no published id yet)
            best = max(supports, key=lambda x: (x.face.tracking != TENTATIVE, x.confidence))
            if run.onset is None:
                run.onset = stamp
            run.face_id, run.expression, run.confidence, run.confirm_s = (
                best.face.face_id, best.expression, best.confidence, best.confirm_s)
            run.vouched = best.face.tracking != TENTATIVE

        if s.current is not None and self._latched(s.current.command):
            if visible and not self._supported(s.current.command, True):
                if s.release_since is None:
                    s.release_since = stamp
            else:
                s.release_since = None
        return self._decide(stamp, visible)

    def tick(self, stamp: float) -> list[Command]:
        """Advance time without a frame (timer). Emits HOLD when due and heartbeats."""
        stamp = float(stamp)
        self._accept(stamp)
        s = self._s
        if s.last_frame is not None and stamp - s.last_frame >= self.config.hold_timeout_s:
            self._forget_evidence()
        return self._decide(stamp, None)

    def hold(self, stamp: float, final: bool = False) -> list[Command]:
        """HOLD now, because the node is not looking (no frame can be trusted to decide).

        final: the node stops (deactivation, shutdown): HOLD replaces any command, STOP included, and is
            published even when it is the current command already: it is the last word. Otherwise
            (activation, a stalled frame) a latched command of higher priority than HOLD (STOP, PAUSE)
            stays in force: it forbids motion already, and the next frames decide its release as usual.
        Evidence is forgotten either way. Returns the HOLD to publish ([] when it is kept out, or, not
        final, already the current command, which the heartbeat then simply repeats).
        """
        stamp = float(stamp)
        self._accept(stamp)
        self._forget_evidence()
        s, cfg = self._s, self.config
        current = s.current
        if not final and current is not None and current.command == HOLD:
            return []
        if not final and current is not None and self._latched(current.command) and \
                current.priority > cfg.priority(HOLD):
            return []
        return [self._emit(_Candidate(HOLD, cfg.priority(HOLD)), stamp)]

    # --- internals -------------------------------------------------------------------------------

    def _accept(self, stamp: float) -> None:
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

    def _support(self, face: FaceResult, command: str, running: bool) -> _Support | None:
        """How ``face`` supports ``command`` (None: it does not); ``running``: at the hysteresis level."""
        margin = self.config.hysteresis if running else 0.0
        if command == STOP:   # per command, whatever the winner: every STOP expression counts
            terms = [(rule, float(face.probabilities[k]) / max(rule.min_confidence - margin, TIME_EPS))
                     for rule, k in self._stop_terms]
            if sum(share for _, share in terms) < 1.0:
                return None
            strongest = max(terms, key=lambda t: t[1])[0]
            total = sum(float(face.probabilities[k]) for _, k in self._stop_terms)
            return _Support(face, strongest.expression, total, strongest.confirm_s)
        # Every other command follows the face's winning expression, and only from a face that may command
        # (attending, and enrolled under command_authority 'enrolled'; fer_ros.hri.people). STOP above is
        # taken from every face: a frightened bystander or a turned-away operator must still stop the robot.
        if not face.may_command:
            return None
        rule = self._active_rules.get(face.expression)
        if rule is None or rule.command != command or face.confidence < rule.min_confidence - margin:
            return None
        return _Support(face, face.expression, float(face.confidence), rule.confirm_s)

    def _forget_evidence(self) -> None:
        self._s.runs.clear()
        self._s.release_since = None

    def _latched(self, command: str) -> bool:
        return self.config.commands[command].latched

    def _supported(self, command: str, faces_visible: bool) -> bool:
        """``command``'s run is going on (HOLD: no face visible)."""
        if command == HOLD:
            return not faces_visible
        run = self._s.runs.get(command)
        return run is not None and run.onset is not None

    def _candidates(self, stamp: float, frame: bool) -> dict[str, _Candidate]:
        s, cfg = self._s, self.config
        found: dict[str, _Candidate] = {}
        if frame:
            for command, run in s.runs.items():
                if run.onset is None or not run.vouched or stamp - run.onset < run.confirm_s - TIME_EPS:
                    continue
                found[command] = _Candidate(command, cfg.priority(command), run.face_id, run.expression,
                                            run.confidence)
        assert s.last_face is not None, 'set by _accept before any decision'
        if stamp - s.last_face >= cfg.hold_timeout_s - TIME_EPS:
            found[HOLD] = _Candidate(HOLD, cfg.priority(HOLD))
        return found

    def _decide(self, stamp: float, visible: list[FaceResult] | None) -> list[Command]:
        """visible: the frame's visible faces; None for a timer tick."""
        s, cfg = self._s, self.config
        frame = visible is not None
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
                release_s = cfg.commands[current.command].release_s or 0.0
                if visible and s.release_since is not None and stamp - s.release_since >= release_s - TIME_EPS:
                    # A command still confirming will decide what follows: no PROCEED just before it.
                    pending = any(run.onset is not None for run in s.runs.values())
                    target = best or (None if pending else self._proceed(visible))
            elif best is not None and not self._supported(current.command, bool(visible)):
                target = best

        if target is not None and (current is None or target.command != current.command):
            dwelling = s.changed_at is not None and stamp - s.changed_at < cfg.min_dwell_s - TIME_EPS
            if target.command == STOP or not dwelling:
                return [self._emit(target, stamp)]
        if s.current is not None and s.last_emit is not None and stamp - s.last_emit >= cfg.heartbeat_period_s:
            s.last_emit = stamp
            return [Command(command=s.current.command, priority=s.current.priority,
                            source_face_id=s.current.source_face_id, expression=s.current.expression,
                            confidence=s.current.confidence, heartbeat=True, stamp=stamp)]
        return []

    def _emit(self, target: _Candidate, stamp: float) -> Command:
        s = self._s
        command = Command(command=target.command, priority=target.priority, source_face_id=target.face_id,
                          expression=target.expression, confidence=float(target.confidence),
                          heartbeat=False, stamp=stamp)
        s.current, s.changed_at, s.last_emit, s.release_since = command, stamp, stamp, None
        return command

    def _proceed(self, visible: list[FaceResult]) -> _Candidate:
        # The face in view is named, but no expression: a Command's expression is always one that maps to
        # the command (PROCEED comes from the release time, not from an expression).
        face = max(visible, key=lambda f: f.confidence)
        return _Candidate(PROCEED, self.config.priority(PROCEED), face.face_id)
