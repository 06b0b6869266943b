"""What the node's service groups share: they act on the current pipeline under the node's pipeline lock
and report their state in /diagnostics without stalling the executor."""
from __future__ import annotations

import threading

NOT_CONFIGURED = 'no pipeline (node not configured)'


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
