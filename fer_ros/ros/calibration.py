"""The neutral-calibration services of a fer node (plain or lifecycle), kept apart from the node itself.

    ~/calibrate_neutral  fer_ros/srv/CalibrateNeutral  face_id ('' = every face in view), duration_s
    ~/clear_neutral      fer_ros/srv/ClearNeutral      face_id ('' = every face)

Both only touch the pipeline's ``NeutralBaselines`` (fer_ros.hri.neutral_baseline) under the node's
pipeline lock and return at once: the collection runs over the next frames in the worker thread, and
its outcome and every baseline are reported in /diagnostics (``diagnostic_values``).
"""
from __future__ import annotations

import threading


class NeutralCalibrationServices:
    """Creates the two services on ``node``.

    Args:
        node: an rclpy Node (or LifecycleNode).
        pipeline: callable returning the current fer_ros.pipeline.Pipeline, or None while there is
            none (a lifecycle node before configure): requests are then rejected.
        lock: the lock that guards the pipeline against the frame worker.
        default_duration_s: callable returning the collection time used when a request gives 0.
    """

    def __init__(self, node, pipeline, lock: threading.Lock, default_duration_s) -> None:
        from fer_ros.srv import CalibrateNeutral, ClearNeutral

        self._pipeline = pipeline
        self._lock = lock
        self._default_duration_s = default_duration_s
        self._logger = node.get_logger()
        self._last_values: dict[str, str] = {}
        self._services = [node.create_service(CalibrateNeutral, '~/calibrate_neutral', self._on_calibrate),
                          node.create_service(ClearNeutral, '~/clear_neutral', self._on_clear)]

    def _on_calibrate(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.accepted, response.message = False, 'no pipeline (node not configured)'
            return response
        face_id = request.face_id.strip()
        duration = float(request.duration_s) or float(self._default_duration_s())
        with self._lock:
            in_view = pipeline.visible_face_ids()
            response.faces_in_view = in_view
            if face_id and face_id not in in_view:
                response.accepted = False
                response.message = f"face {face_id!r} is not in view (faces in view: {', '.join(in_view) or 'none'})"
                return response
            try:
                response.message = pipeline.neutral.request(face_id, duration)
                response.accepted = True
            except ValueError as exc:
                response.accepted, response.message = False, str(exc)
        self._logger.info(f'calibrate_neutral: {response.message}')
        return response

    def _on_clear(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.message = 'no pipeline (node not configured)'
            return response
        with self._lock:
            response.cleared = pipeline.neutral.clear(request.face_id.strip())
        response.message = f"cleared {', '.join(response.cleared) or 'nothing'}"
        self._logger.info(f'clear_neutral: {response.message}')
        return response

    def diagnostic_values(self) -> dict[str, str]:
        """Calibration state and baselines for the node's diagnostics status ({} without a pipeline).

        Waits at most 50 ms for the worker's lock (the executor must not stall behind a slow frame);
        the previous values are reported when it cannot get it."""
        pipeline = self._pipeline()
        if pipeline is None:
            return {}
        if self._lock.acquire(timeout=0.05):
            try:
                self._last_values = pipeline.neutral.status()
            finally:
                self._lock.release()
        return dict(self._last_values)

    def destroy(self, node) -> None:
        for service in self._services:
            node.destroy_service(service)
        self._services = []
