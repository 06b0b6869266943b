"""Debug overlay: face boxes, ids, people, expressions, confidences, head pose, attention and the current
command (ROS-free)."""
from __future__ import annotations

import cv2
import numpy as np

from fer_ros.core.types import Command, FaceResult

_GREEN, _RED, _WHITE, _BLACK = (60, 200, 60), (40, 40, 230), (255, 255, 255), (0, 0, 0)
_GREY, _YELLOW = (150, 150, 150), (0, 220, 255)


def draw_overlay(bgr: np.ndarray, faces: list[FaceResult], command: Command | None = None) -> np.ndarray:
    """Return a copy of ``bgr`` (uint8[H, W, 3]) with each face's box and 'id expression conf' label,
    and the current command in the top-left corner (red for STOP)."""
    out = bgr.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    for face in faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        # green: this face may command; grey: it may not (not attending, or not enrolled)
        cv2.rectangle(out, (x, y), (x + w, y + h), _GREEN if face.may_command else _GREY, max(1, int(2 * scale)))
        who = f' {face.person_name or face.person_id}' if face.person_id else ''
        _text(out, f'{face.face_id}{who} {face.expression} {face.confidence:.2f}', (x, max(0, y - 4)), scale)
        if face.head_pose is not None:
            pose = face.head_pose
            _pose_axis(out, face, scale)
            _text(out, f'yaw {pose.yaw:.0f} pitch {pose.pitch:.0f} roll {pose.roll:.0f}',
                  (x, y + h + int(18 * scale)), scale * 0.8)
        if not face.attending:
            _text(out, f'not attending: {face.attention}', (x, y + h + int(38 * scale)), scale * 0.8, _GREY)
    if command is not None:
        _text(out, f'{command.command} ({command.expression or "-"})', (6, int(28 * scale)), scale * 1.3,
              _RED if command.command == 'STOP' else _WHITE)
    return out


def _pose_axis(img, face: FaceResult, scale: float) -> None:
    """A line from the nose in the direction the face points (its length grows as the face turns away)."""
    if face.landmarks is None or face.head_pose is None:
        return
    nose = face.landmarks[2]
    yaw, pitch = np.radians(face.head_pose.yaw), np.radians(face.head_pose.pitch)
    length = 0.8 * face.box[3]
    tip = (int(nose[0] + length * np.sin(yaw) * np.cos(pitch)), int(nose[1] - length * np.sin(pitch)))
    cv2.line(img, (int(nose[0]), int(nose[1])), tip, _YELLOW, max(1, int(2 * scale)), cv2.LINE_AA)


def _text(img, text, org, scale, color=_WHITE):
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x, y - th - base), (x + tw, y + base // 2), _BLACK, -1)
    cv2.putText(img, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
