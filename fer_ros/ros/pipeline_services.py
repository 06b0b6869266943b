"""What the node's service groups share: they act on the current pipeline under the node's pipeline lock
and report their state in /diagnostics, never stalling the executor: a call waits at most BUSY_TIMEOUT_S
for the frame worker (an inference that hangs must not take diagnostics and every other callback of the
executor with it), then is refused with BUSY."""
from __future__ import annotations

import contextlib
import functools
import threading

NOT_CONFIGURED = 'no pipeline (node not configured)'
BUSY_TIMEOUT_S = 1.0
BUSY = f'the frame worker has been busy for more than {BUSY_TIMEOUT_S:g} s (see /diagnostics); try again'


class Busy(RuntimeError):
    """The pipeline lock was not free within BUSY_TIMEOUT_S."""


@contextlib.contextmanager
def pipeline_lock(lock: threading.Lock):
    """``lock``, waited for at most BUSY_TIMEOUT_S; raises Busy."""
    if not lock.acquire(timeout=BUSY_TIMEOUT_S):
        raise Busy(BUSY)
    try:
        yield
    finally:
        lock.release()


def refused_when_busy(handler):
    """A service handler that answers BUSY (in ``message``, else ``store``; ``accepted`` False where the
    response has it) when the pipeline lock stays taken (``pipeline_lock``)."""
    @functools.wraps(handler)
    def wrapper(self, request, response):
        try:
            return handler(self, request, response)
        except Busy:
            if hasattr(response, 'accepted'):
                response.accepted = False
            setattr(response, 'message' if hasattr(response, 'message') else 'store', BUSY)
            return response
    return wrapper


class PipelineServices:
    """Base of a group of services on a fer node (fer_ros.ros.calibration, fer_ros.ros.people_services).

    Args:
        node: an rclpy Node (or LifecycleNode).
        pipeline: callable returning the current fer_ros.pipeline.Pipeline, or None while there is none
            (a lifecycle node before configure): requests are then refused with NOT_CONFIGURED.
        lock: the lock that guards the pipeline against the frame worker.
    Subclasses create their services into ``self._services`` and implement ``status(pipeline)``.
    """

    def __init__(self, node, pipeline, lock: threading.Lock) -> None:
        self._pipeline = pipeline
        self._lock = lock
        self._logger = node.get_logger()
        self._last_values: dict[str, str] = {}
        self._services: list = []

    def status(self, pipeline) -> dict[str, str]:
        raise NotImplementedError

    def diagnostic_values(self) -> dict[str, str]:
        """``status`` for the node's diagnostics ({} without a pipeline). Waits at most 50 ms for the worker's
        lock (the executor must not stall behind a slow frame); the previous values when it cannot get it."""
        pipeline = self._pipeline()
        if pipeline is None:
            return {}
        if self._lock.acquire(timeout=0.05):
            try:
                self._last_values = self.status(pipeline)
            finally:
                self._lock.release()
        return dict(self._last_values)

    def destroy(self, node) -> None:
        for service in self._services:
            node.destroy_service(service)
        self._services = []
