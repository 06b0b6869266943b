"""The one place where commands are decided and handed out, for frames and for the clock alike.

The stamp policy (fer_ros.hri.stamps) and the command mapper (fer_ros.hri.commands) sit behind one lock
that no inference ever holds: the node's frame worker takes it twice per frame, briefly (to judge the
frame's stamp, then to apply its faces), and the node's command clock takes it a few times a second
(HOLD, heartbeats). So a frame stuck in inference can delay neither, and because every command is
handed to ``publish`` inside the lock, commands leave in the order they were decided, on one clock
that never runs backwards.

While a frame is in flight (judged, not yet applied) the clock defers to it for at most ``stall_s``
(the frame's own update decides, on the frame's stamp). A frame in flight for longer is a *stall*: the
clock goes on and HOLD is decided at once (``CommandMapper.hold``: a latched STOP or PAUSE stays, it
forbids motion already); when the stalled frame finally comes back, its faces are applied at the
clock's newest time (its evidence still counts, late).

Thread-safe; reentrant, so ``publish`` may read ``camera_clock``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from fer_ros.core.types import Command, FaceResult
from fer_ros.hri.commands import CommandMapper
from fer_ros.hri.stamps import StampPolicy, Verdict

Publish = Callable[[list[Command]], None]


class Decisions:
    """The stamp policy and the command mapper behind one lock (see the module docstring).

    Args:
        mapper: the command mapper. stamps: the stamp policy.
        stall_s: a frame in flight for longer than this is a stall (default: the heartbeat period, so
            the heartbeat never misses a beat because of one slow frame).
    """

    def __init__(self, mapper: CommandMapper, stamps: StampPolicy, stall_s: float | None = None) -> None:
        self.mapper = mapper
        self.stamps = stamps
        self.stall_s = float(mapper.config.heartbeat_period_s if stall_s is None else stall_s)
        self._lock = threading.RLock()
        self._in_flight: float | None = None       # arrival of the frame being processed
        self._stalled = False                      # HOLD already decided for the frame in flight

    def judge(self, camera: str, stamp: float, arrival: float) -> Verdict:
        """A frame starts: its stamp verdict (fer_ros.hri.stamps); a processed frame is then in flight
        until ``frame`` or ``abandon``."""
        with self._lock:
            verdict = self.stamps.judge(camera, stamp, arrival)
            if not verdict.skip:
                self._in_flight, self._stalled = arrival, False
            return verdict

    def frame(self, faces: list[FaceResult], command_time: float, publish: Publish | None = None) -> list[Command]:
        """The frame in flight ends: apply its faces (at ``command_time``, or at the clock's newest time
        when the clock went on during a stall) and publish what that decides."""
        with self._lock:
            newest = self.mapper.newest
            commands = self.mapper.update(faces, command_time if newest is None else max(command_time, newest))
            self._in_flight, self._stalled = None, False
            return self._out(commands, publish)

    def abandon(self) -> None:
        """The frame in flight failed (its error is reported elsewhere): no longer wait for it."""
        with self._lock:
            self._in_flight, self._stalled = None, False

    def tick(self, arrival: float, publish: Publish | None = None) -> list[Command]:
        """The command clock at ``arrival`` (the frames' arrival clock): HOLD and heartbeats."""
        with self._lock:
            if self._in_flight is not None:
                if arrival - self._in_flight < self.stall_s:
                    return []                                   # the frame in flight decides
                if not self._stalled:
                    self._stalled = True
                    return self._out(self.mapper.hold(self.stamps.clock(arrival)), publish)
            now = self.stamps.tick_time(arrival)
            return [] if now is None else self._out(self.mapper.tick(now), publish)

    def hold(self, arrival: float, final: bool = False, publish: Publish | None = None) -> list[Command]:
        """HOLD now (CommandMapper.hold): activation, deactivation, shutdown."""
        with self._lock:
            return self._out(self.mapper.hold(self.stamps.clock(arrival), final), publish)

    def stalled_for(self, arrival: float) -> float:
        """Seconds the frame in flight has been in flight beyond ``stall_s`` (0.0: no stall)."""
        with self._lock:
            if self._in_flight is None:
                return 0.0
            return max(0.0, arrival - self._in_flight - self.stall_s)

    def camera_clock(self, arrival: float) -> tuple[str, float] | None:
        """StampPolicy.camera_clock under the lock."""
        with self._lock:
            return self.stamps.camera_clock(arrival)

    def reset(self, keep_command: bool) -> None:
        """Forget every camera's timeline and the mapper's evidence (keep_command: see CommandMapper.reset);
        the command clock keeps running."""
        with self._lock:
            self.stamps.reset()
            self.mapper.reset(keep_command=keep_command)
            self._in_flight, self._stalled = None, False

    @staticmethod
    def _out(commands: list[Command], publish: Publish | None) -> list[Command]:
        if commands and publish is not None:
            publish(commands)
        return commands
