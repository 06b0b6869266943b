"""Running statistics for diagnostics and benchmarks: rates and latency percentiles (ROS-free)."""
from __future__ import annotations

import collections
import threading

import numpy as np


def percentiles(values, qs=(50, 90, 99)) -> dict[str, float]:
    """{'p50': ..., 'p90': ..., 'p99': ...} of ``values`` (NaN when empty). The one percentile helper of
    the diagnostics, the reports and the benchmarks."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {f'p{q}': float('nan') for q in qs}
    return {f'p{q}': float(np.percentile(arr, q)) for q in qs}


def summary(values) -> dict[str, float | int | None]:
    """n, mean, median, p90, p99, min, max of the finite values (None entries when there are none)."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {'n': 0, 'mean': None, 'median': None, 'p90': None, 'p99': None, 'min': None, 'max': None}
    q = percentiles(arr)
    return {'n': int(arr.size), 'mean': float(arr.mean()), 'median': q['p50'], 'p90': q['p90'], 'p99': q['p99'],
            'min': float(arr.min()), 'max': float(arr.max())}


class RateMeter:
    """Events per second over the last ``window_s`` seconds of a monotonic clock."""

    def __init__(self, window_s: float = 5.0) -> None:
        if window_s <= 0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def mark(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class StageTimes:
    """The last ``maxlen`` timings (ms) of each named stage; thread-safe."""

    def __init__(self, maxlen: int = 300) -> None:
        self._data: dict[str, collections.deque[float]] = {}
        self._maxlen = maxlen
        self._lock = threading.Lock()

    def add(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            for stage, ms in timings_ms.items():
                self._data.setdefault(stage, collections.deque(maxlen=self._maxlen)).append(float(ms))

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {stage: percentiles(values) for stage, values in self._data.items()}
