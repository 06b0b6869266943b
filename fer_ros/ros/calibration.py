"""The neutral-calibration services of a fer node (plain or lifecycle), kept apart from the node itself.

    ~/calibrate_neutral  fer_ros/srv/CalibrateNeutral  face_id ('' = every face in view), duration_s
    ~/clear_neutral      fer_ros/srv/ClearNeutral      face_id ('' = every face)

Both only touch the pipeline's ``NeutralBaselines`` (fer_ros.hri.neutral_baseline) under the node's
pipeline lock and return at once: the collection runs over the next frames in the worker thread, and
its outcome and every baseline are reported in /diagnostics (``diagnostic_values``).
"""
from __future__ import annotations

import threading

from fer_ros.ros.pipeline_services import NOT_CONFIGURED, PipelineServices, pipeline_lock, refused_when_busy


class NeutralCalibrationServices(PipelineServices):
    """Creates the two services on ``node`` (arguments: fer_ros.ros.pipeline_services.PipelineServices).

    default_duration_s: callable returning the collection time used when a request gives 0.
    """

    def __init__(self, node, pipeline, lock: threading.Lock, default_duration_s) -> None:
        from fer_ros.srv import CalibrateNeutral, ClearNeutral

        super().__init__(node, pipeline, lock)
        self._default_duration_s = default_duration_s
        self._services = [node.create_service(CalibrateNeutral, '~/calibrate_neutral', self._on_calibrate),
                          node.create_service(ClearNeutral, '~/clear_neutral', self._on_clear)]

    @refused_when_busy
    def _on_calibrate(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.accepted, response.message = False, NOT_CONFIGURED
            return response
        face_id = request.face_id.strip()
        duration = float(request.duration_s) or float(self._default_duration_s())
        with pipeline_lock(self._lock):
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

    @refused_when_busy
    def _on_clear(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.message = NOT_CONFIGURED
            return response
        with pipeline_lock(self._lock):
            response.cleared = pipeline.neutral.clear(request.face_id.strip())
        response.message = f"cleared {', '.join(response.cleared) or 'nothing'}"
        self._logger.info(f'clear_neutral: {response.message}')
        return response

    def status(self, pipeline) -> dict[str, str]:
        """The calibration state and every baseline."""
        return pipeline.neutral.status()
