"""A one-element mailbox between the subscription callback and the processing worker (ROS-free).

The callback never blocks and never queues: a new frame replaces an unprocessed one, which is
counted as dropped. The worker always gets the newest frame, so latency cannot grow without bound.
"""
from __future__ import annotations

import threading
from typing import Any


class LatestFrameSlot:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0      # frames replaced before the worker took them
        self.received = 0

    def put(self, item: Any) -> None:
        with self._cond:
            self.received += 1
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Any:
        """The newest item (removing it), or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def discard(self) -> None:
        """Drop a frame still waiting (counted as dropped), e.g. when processing stops."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
                self._item = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
