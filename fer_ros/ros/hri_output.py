"""ROS4HRI output (REP-155): the faces and expressions on the topics ros4hri's consumers read.

With the parameter ``hri_output: true`` the node publishes, for every processed frame, beside its own
``expressions``:

- ``/humans/faces/tracked`` (hri_msgs/IdsList): the ids of the faces of this frame (the faces of
  ``expressions``; an empty list when none is seen; nothing while no frame is processed);
- per face, in the namespace ``/humans/faces/<id>/``:
  ``roi`` (hri_msgs/NormalizedRegionOfInterest2D: the box in 0..1 image coordinates, ``c`` the detector
  score), ``expression`` (hri_msgs/Expression: the smoothed expression word, valence, arousal, confidence;
  fer_ros's labels are REP-155's words) and ``cropped`` (sensor_msgs/Image bgr8, REP-155's default
  128 x 128: the face box scaled to fit, centred, zero-padded; encoded only while someone subscribes).

Every message carries the input image's header. Face ids are the tracker's (``f3``): stable while the face
is tracked and never given to another face in one run. A face's publishers are created when its id first
appears and destroyed when it leaves the tracked list. Publishers are reliable and transient-local (depth
1), so a consumer that subscribes to a face's topics after reading ``tracked`` (libhri does) gets the
face's latest values at once; volatile and best-effort subscribers match them too. On deactivation an empty
``tracked`` list is published: a late subscriber is not told about faces nobody looks at any more.

The topics are global (``/humans/...``, as REP-155 defines them) whatever the node's namespace.
``hri_msgs`` (ros4hri, BSD) comes with a ROS install (``ros-<distro>-hri-msgs``); it is imported only
when the output is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from fer_ros.core.types import FaceResult
from fer_ros.ros.convert import bgr_to_image
from fer_ros.settings.params import ParameterError

FACES_NS = '/humans/faces'
# REP-155's global parameters /humans/faces/width and /height default to 128: the size of `cropped`
CROPPED_SIZE = 128
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)


def import_hri_msgs():
    """The hri_msgs.msg module. Raises ParameterError naming ``hri_output`` when it is not importable."""
    try:
        from hri_msgs import msg
    except ImportError as exc:
        raise ParameterError(
            "parameter 'hri_output': true needs ros4hri's hri_msgs, which is not importable here "
            f'({exc}). Install it with the ROS distribution (ros-<distro>-hri-msgs) or build it into the '
            "workspace, or set hri_output: false") from None
    return msg


def normalized_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, ...]:
    """(x, y, w, h) pixels -> (xmin, ymin, xmax, ymax) clipped to 0..1 of the ``width`` x ``height`` image."""
    x, y, w, h = box
    return (float(np.clip(x / width, 0.0, 1.0)), float(np.clip(y / height, 0.0, 1.0)),
            float(np.clip((x + w) / width, 0.0, 1.0)), float(np.clip((y + h) / height, 0.0, 1.0)))


def cropped_face(bgr: np.ndarray, box: tuple[float, float, float, float], size: int = CROPPED_SIZE) -> np.ndarray:
    """uint8[size, size, 3]: the box of ``bgr`` (clipped to it) scaled to fit, centred, zero-padded."""
    height, width = bgr.shape[:2]
    x0, y0 = int(np.clip(round(box[0]), 0, width - 1)), int(np.clip(round(box[1]), 0, height - 1))
    x1 = int(np.clip(round(box[0] + box[2]), x0 + 1, width))
    y1 = int(np.clip(round(box[1] + box[3]), y0 + 1, height))
    crop = bgr[y0:y1, x0:x1]
    scale = size / max(crop.shape[:2])
    w, h = max(1, min(size, round(crop.shape[1] * scale))), max(1, min(size, round(crop.shape[0] * scale)))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale < 1
                                                 else cv2.INTER_LINEAR)
    return out


@dataclass
class _FacePublishers:
    roi: Publisher
    expression: Publisher
    cropped: Publisher


class HriOutput:
    """The REP-155 face topics on ``node``.

    Args:
        node: the rclpy node (plain or lifecycle).
        make_publisher: ``node.create_publisher`` or ``node.create_lifecycle_publisher`` for ``tracked``
            (the per-face publishers come and go while the node is active: plain publishers).
    Raises:
        ParameterError: hri_msgs is not importable (the message names the parameter ``hri_output``).
    """

    def __init__(self, node, make_publisher) -> None:
        self._msg = import_hri_msgs()
        self._node = node
        self._tracked = make_publisher(self._msg.IdsList, f'{FACES_NS}/tracked', QOS)
        self._faces: dict[str, _FacePublishers] = {}

    @property
    def tracked_publisher(self):
        return self._tracked

    def publish(self, faces: list[FaceResult], header, bgr: np.ndarray) -> None:
        """Publish one processed frame's faces (``bgr``: the decoded frame, uint8[H, W, 3])."""
        height, width = bgr.shape[:2]
        ids = [face.face_id for face in faces]
        self._drop_faces_except(set(ids))
        self._tracked.publish(self._msg.IdsList(header=header, ids=ids))
        for face in faces:
            pubs = self._faces.get(face.face_id) or self._add_face(face.face_id)
            xmin, ymin, xmax, ymax = normalized_box(face.box, width, height)
            pubs.roi.publish(self._msg.NormalizedRegionOfInterest2D(
                header=header, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, c=float(face.detection_score)))
            pubs.expression.publish(self._msg.Expression(
                header=header, expression=face.expression, valence=float(face.valence),
                arousal=float(face.arousal), confidence=float(face.confidence)))
            if pubs.cropped.get_subscription_count() > 0:
                pubs.cropped.publish(bgr_to_image(cropped_face(bgr, face.box), header))

    def clear(self, header) -> None:
        """No face any more (the node stops looking): an empty tracked list, the per-face topics go."""
        self._drop_faces_except(set())
        self._tracked.publish(self._msg.IdsList(header=header, ids=[]))

    def close(self) -> None:
        """Destroy the per-face publishers (``tracked`` is the caller's, made by ``make_publisher``)."""
        self._drop_faces_except(set())

    def _add_face(self, face_id: str) -> _FacePublishers:
        ns = f'{FACES_NS}/{face_id}'
        pubs = _FacePublishers(roi=self._node.create_publisher(self._msg.NormalizedRegionOfInterest2D,
                                                               f'{ns}/roi', QOS),
                               expression=self._node.create_publisher(self._msg.Expression, f'{ns}/expression', QOS),
                               cropped=self._node.create_publisher(Image, f'{ns}/cropped', QOS))
        self._faces[face_id] = pubs
        return pubs

    def _drop_faces_except(self, keep: set[str]) -> None:
        for face_id in [f for f in self._faces if f not in keep]:
            pubs = self._faces.pop(face_id)
            for pub in (pubs.roi, pubs.expression, pubs.cropped):
                self._node.destroy_publisher(pub)
