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


class WindowCounter:
    """How many events happened in the last ``window_s`` seconds of a monotonic clock, to within one of
    ``buckets`` time slices, in bounded memory however many events come (a deque of timestamps capped at
    some length would saturate at that length); thread-safe."""

    def __init__(self, window_s: float = 10.0, buckets: int = 100) -> None:
        if window_s <= 0 or buckets < 1:
            raise ValueError(f'window_s must be > 0 and buckets >= 1, got {window_s}, {buckets}')
        self.window_s = float(window_s)
        self._width = self.window_s / buckets
        self._slices: collections.deque[list[int]] = collections.deque()    # [slice index, count]
        self._lock = threading.Lock()

    def add(self, now: float, n: int = 1) -> None:
        index = int(now // self._width)
        with self._lock:
            if self._slices and self._slices[-1][0] == index:
                self._slices[-1][1] += n
            else:
                self._slices.append([index, n])
            self._trim(index)

    def count(self, now: float) -> int:
        with self._lock:
            self._trim(int(now // self._width))
            return sum(n for _, n in self._slices)

    def _trim(self, index: int) -> None:
        oldest = index - int(round(self.window_s / self._width)) + 1
        while self._slices and self._slices[0][0] < oldest:
            self._slices.popleft()
