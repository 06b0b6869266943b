"""The stamp policy: which frames are processed, with which stamps, per camera (ROS-free, one place).

A frame arrives with a header stamp (the camera's clock, seconds) and a frame_id (the camera), and is
received at an *arrival* time (the receiver's monotonic clock in the node; the bag's log time offline).
Every frame is judged against its own camera's timeline, so two cameras with skewed clocks never
disturb each other. For a camera whose last accepted frame had stamp ``S`` and arrival ``A``, a frame
(stamp ``s``, arrival ``a``) is expected at about ``S + (a - A)``:

- ``S <= s <= S + (a - A) + max_lead_s``: in order, processed. A repeated stamp (a driver that never
  stamps) is processed with ``S + (a - A)`` instead, so timers still advance.
- ``s < S``: out of order (reordered by the network; ``out_of_order``) when at most ``clock_reset_s``
  older, else a clock jump back (a bag loop, a camera restart; ``clock_jump``). ``s`` later than
  ``S + (a - A) + max_lead_s``: ahead of the camera's own clock (one wrong stamp, or the clock jumped
  forward; ``future_stamp``). Such a frame is skipped unless ``confirm_frames`` consecutive frames agree
  on the new timeline: then the camera switches to it (``new_timeline``: its tracks are reset). One bad
  stamp therefore costs one frame, never the good frames after it, and a real clock change costs
  ``confirm_frames - 1`` frames; a second camera interleaving on the same frame_id never wins (its
  frames are never consecutive), so there is no thrashing between timelines.

Commands are decided on ONE clock for all cameras, the *command time*: a camera's stamps plus a
per-timeline shift chosen so that command time continues where it was when the camera (re)started its
timeline, and never runs backwards. With one camera and no clock jumps it equals the stamps exactly. So
the command mapper never sees a clock reset: a latched STOP stays latched through one and still needs
its full release time of calm frames.

Times are float seconds. ``to_stamp`` turns seconds into a ROS Time's (sec, nanosec), saturating at
the int32 range so a far-future clock cannot overflow an output message.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from fer_ros.core.validate import check_range

INT32_MAX = 2**31 - 1

# Why a frame was skipped (the node counts each kind).
OUT_OF_ORDER = 'out_of_order'
FUTURE_STAMP = 'future_stamp'
CLOCK_JUMP = 'clock_jump'
BAD_STAMP = 'bad_stamp'
SKIP_REASONS: tuple[str, ...] = (OUT_OF_ORDER, FUTURE_STAMP, CLOCK_JUMP, BAD_STAMP)
# Timer ticks only act after this long without an accepted frame, so while frames flow the command
# clock follows the frames' stamps exactly.
TICK_IDLE_S = 0.25


def to_seconds(sec: int, nanosec: int) -> float:
    """A ROS Time's fields -> float seconds."""
    return sec + nanosec * 1e-9


def to_stamp(seconds: float) -> tuple[int, int]:
    """Float seconds -> (sec, nanosec) of a ROS Time, clamped to 0 .. INT32_MAX.999999999 (NaN -> 0)."""
    if not math.isfinite(seconds) or seconds <= 0:
        return (INT32_MAX, 999_999_999) if seconds == math.inf else (0, 0)
    if seconds >= INT32_MAX + 1:
        return INT32_MAX, 999_999_999
    sec = int(seconds)
    nanosec = min(int(round((seconds - sec) * 1e9)), 999_999_999)
    return sec, nanosec


@dataclass(frozen=True)
class StampConfig:
    """clock_reset_s: a step back larger than this is a clock jump, smaller is out of order (commands.yaml).
    max_lead_s: how far a stamp may run ahead of the camera's clock (last stamp + elapsed arrival time).
    confirm_frames: consecutive frames that must agree before a camera switches to a new timeline.
    max_cameras: cameras (frame_ids) kept; the longest-silent one is forgotten beyond this."""

    clock_reset_s: float = 1.0
    max_lead_s: float = 0.5
    confirm_frames: int = 3
    max_cameras: int = 16

    def __post_init__(self) -> None:
        check_range('StampConfig', 'clock_reset_s', self.clock_reset_s, 1e-3, 3600.0)
        check_range('StampConfig', 'max_lead_s', self.max_lead_s, 0.0, 3600.0)
        check_range('StampConfig', 'confirm_frames', self.confirm_frames, 1, 1000, integer=True)
        check_range('StampConfig', 'max_cameras', self.max_cameras, 1, 1024, integer=True)


@dataclass(frozen=True)
class Verdict:
    """What to do with one frame.

    skip: '' = process it, else one of SKIP_REASONS. stamp: the camera-clock stamp to track with.
    command_time: the common command clock. new_timeline: the camera's tracks must be reset first.
    forgotten: cameras dropped to make room for this one (their tracks can be freed)."""

    skip: str
    stamp: float = 0.0
    command_time: float = 0.0
    new_timeline: bool = False
    forgotten: tuple[str, ...] = ()


@dataclass
class _Camera:
    stamp: float            # last accepted (effective) stamp
    arrival: float          # its arrival time
    shift: float            # command_time = stamp + shift
    header: float = math.nan  # last accepted header stamp as received
    pending: list[tuple[float, float]] = field(default_factory=list)   # (stamp, arrival) of a new timeline


class StampPolicy:
    """Judges every frame's stamp per camera; see the module docstring. Not thread-safe."""

    def __init__(self, config: StampConfig | None = None) -> None:
        self.config = config or StampConfig()
        self._cameras: OrderedDict[str, _Camera] = OrderedDict()   # least recently accepted first
        self._command_time: float | None = None    # newest command time handed out
        self._arrival = -math.inf                  # its arrival time (-inf before the first)
        self._last_camera = ''
        self._frame_arrival: float | None = None   # arrival of the newest accepted frame

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._cameras)

    def reset(self) -> None:
        """Forget every camera's timeline (the command clock keeps running)."""
        self._cameras.clear()

    def judge(self, camera: str, stamp: float, arrival: float) -> Verdict:
        """Decide about one frame of ``camera`` stamped ``stamp`` that arrived at ``arrival``."""
        cfg = self.config
        if not (math.isfinite(stamp) and math.isfinite(arrival)):
            return Verdict(BAD_STAMP)
        cam = self._cameras.get(camera)
        if cam is None:
            return self._adopt(camera, stamp, arrival, new_timeline=False)
        expected = cam.stamp + max(0.0, arrival - cam.arrival)
        if stamp == cam.header:                  # repeated stamp (a driver that never stamps): arrival time
            cam.pending.clear()
            return self._accept(camera, cam, expected, arrival, header=stamp)
        if cam.stamp <= stamp <= expected + cfg.max_lead_s:
            cam.pending.clear()
            return self._accept(camera, cam, stamp, arrival)
        # Off this camera's timeline: only a run of frames agreeing on a new one switches to it.
        if stamp > cam.stamp:
            reason = FUTURE_STAMP
        else:
            reason = OUT_OF_ORDER if cam.stamp - stamp <= cfg.clock_reset_s else CLOCK_JUMP
        if cam.pending:
            last_stamp, last_arrival = cam.pending[-1]
            if not last_stamp <= stamp <= last_stamp + max(0.0, arrival - last_arrival) + cfg.max_lead_s:
                cam.pending.clear()
        cam.pending.append((stamp, arrival))
        if len(cam.pending) >= cfg.confirm_frames:
            return self._adopt(camera, stamp, arrival, new_timeline=True)
        return Verdict(reason)

    def tick_time(self, arrival: float) -> float | None:
        """The command clock at ``arrival`` for a timer tick (HOLD, heartbeats when frames stop), or None
        while frames are flowing (a frame arrived less than ``TICK_IDLE_S`` ago: its own update decides)."""
        if self._frame_arrival is not None and arrival - self._frame_arrival < TICK_IDLE_S:
            return None
        return self.clock(arrival)

    def clock(self, arrival: float) -> float:
        """The command clock at ``arrival``, advanced to it (also while frames flow: a forced HOLD)."""
        if self._command_time is None:                 # no frame yet: the clock starts at the first tick
            self._command_time, self._arrival = 0.0, arrival
        now = self._command_time + max(0.0, arrival - self._arrival)
        self._command_time, self._arrival = now, max(arrival, self._arrival)
        return now

    def camera_clock(self, arrival: float) -> tuple[str, float] | None:
        """(camera, its clock at ``arrival``) of the camera that sent the last accepted frame, or None.
        Stamps timer-driven outputs on the clock of the camera they follow."""
        cam = self._cameras.get(self._last_camera)
        if cam is None:
            return None
        return self._last_camera, cam.stamp + max(0.0, arrival - cam.arrival)

    # --- internals ---------------------------------------------------------------------------------

    def _adopt(self, camera: str, stamp: float, arrival: float, new_timeline: bool) -> Verdict:
        """Start a timeline for ``camera`` whose command time continues the command clock."""
        if self._command_time is None:
            shift = 0.0
        else:
            shift = self._command_time + max(0.0, arrival - self._arrival) - stamp
        forgotten = []
        if camera not in self._cameras:
            while len(self._cameras) >= self.config.max_cameras:
                forgotten.append(self._cameras.popitem(last=False)[0])
        cam = self._cameras[camera] = _Camera(stamp, arrival, shift)
        verdict = self._accept(camera, cam, stamp, arrival)
        return Verdict('', verdict.stamp, verdict.command_time, new_timeline, tuple(forgotten))

    def _accept(self, camera: str, cam: _Camera, stamp: float, arrival: float, header: float | None = None) -> Verdict:
        cam.stamp, cam.arrival = stamp, arrival
        cam.header = stamp if header is None else header
        self._cameras.move_to_end(camera)
        self._last_camera = camera
        command_time = stamp + cam.shift
        if self._command_time is not None and command_time < self._command_time:
            command_time = self._command_time          # other cameras' jitter: the clock never runs back
        self._command_time = command_time
        self._arrival = max(arrival, self._arrival)
        self._frame_arrival = self._arrival
        return Verdict('', stamp, command_time)


class StampClock:
    """Stamps for replaying a recording: the header stamp, unless it is not after the previous frame's
    (zero or repeated stamps from a driver, a clock jump back), then the previous stamp advanced by the
    log-time gap. Offline and live evaluation both use it, so they process the same stamps and the live
    node's outputs (which copy the stamp) match frames one to one. Integer nanoseconds."""

    def __init__(self) -> None:
        self._prev: int | None = None
        self._prev_log = 0
        self.replaced = 0      # frames whose header stamp was not used

    def effective(self, header_ns: int, log_ns: int) -> int:
        if self._prev is None or header_ns > self._prev:
            out = header_ns
        else:
            out = self._prev + max(1, log_ns - self._prev_log)
            self.replaced += 1
        self._prev, self._prev_log = out, log_ns
        return out
