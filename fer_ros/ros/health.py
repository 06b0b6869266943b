"""The node's counters and recent errors, behind one lock: the frame worker (and the command clock)
write them while the executor's diagnostics timer reads them, so neither a deque iterated while it
grows nor a lost read-modify-write of a counter can happen.

Every received frame ends in exactly one count: processed, dropped (the latest-frame slot counts
those), a decode or pipeline error, or a stamp skip (fer_ros.hri.stamps.SKIP_REASONS). Errors of the
last ``ERROR_WINDOW_S`` are counted exactly however many arrive (fer_ros.util.stats.WindowCounter).
"""
from __future__ import annotations

import threading
import time

from fer_ros.hri.stamps import SKIP_REASONS
from fer_ros.util.stats import RateMeter, StageTimes, WindowCounter

LOG_THROTTLE_S = 5.0
ERROR_WINDOW_S = 10.0       # diagnostics are WARN while an error happened this recently
COUNTERS = ('processed', 'decode_errors', 'pipeline_errors') + SKIP_REASONS + (
    'clock_resets', 'commands', 'scan_errors', 'command_clock_errors')
FRAME_OUTCOMES = ('processed', 'decode_errors', 'pipeline_errors') + SKIP_REASONS   # one per frame


class NodeHealth:
    """Counters, the error window, rates and stage times of one node.

    Args:
        logger: the node's rclpy logger (errors are logged at most every LOG_THROTTLE_S per kind).
    """

    def __init__(self, logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._errors = WindowCounter(ERROR_WINDOW_S)
        self._last_error = ''
        self._last_log: dict[str, float] = {}
        self.in_rate, self.out_rate = RateMeter(), RateMeter()     # thread-safe themselves
        self.stage_times = StageTimes()
        self.last_received: float | None = None                    # time.monotonic() of the last frame in
        self.last_processed: float | None = None
        self.faces_last = 0

    def received(self, now: float) -> None:
        self.last_received = now
        self.in_rate.mark(now)

    def processed(self, faces: int, timing_ms: dict[str, float]) -> None:
        now = time.monotonic()
        with self._lock:
            self._counts['processed'] += 1
            self.last_processed, self.faces_last = now, faces
        self.stage_times.add(timing_ms)
        self.out_rate.mark(now)

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counts[counter] += n

    def report(self, counter: str, message: str) -> None:
        """Count a bad input or failure, keep it for diagnostics, log it at most every 5 s per kind."""
        with self._lock:
            self._counts[counter] += 1
            self._last_error = message
            self._errors.add(time.monotonic())
            so_far = self._counts[counter]
        self.log_throttled(counter, f'{message} ({so_far} so far)')

    def log_throttled(self, kind: str, message: str, warn: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = now - self._last_log.get(kind, -1e9) >= LOG_THROTTLE_S
            if due:
                self._last_log[kind] = now
        if due:
            if warn:      # rclpy fixes one severity per call site: two calls, not one
                self._logger.warning(message)
            else:
                self._logger.error(message)

    def snapshot(self, now: float) -> tuple[dict[str, int], int, str]:
        """(a copy of the counters, errors in the last ERROR_WINDOW_S, the last error message)."""
        with self._lock:
            return dict(self._counts), self._errors.count(now), self._last_error
