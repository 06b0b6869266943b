"""Debug overlay: face boxes, ids, expressions, confidences and the current command (ROS-free)."""
from __future__ import annotations

import cv2
import numpy as np

from fer_ros.core.types import Command, FaceResult

_GREEN, _RED, _WHITE, _BLACK = (60, 200, 60), (40, 40, 230), (255, 255, 255), (0, 0, 0)


def draw_overlay(bgr: np.ndarray, faces: list[FaceResult], command: Command | None = None) -> np.ndarray:
    """Return a copy of ``bgr`` (uint8[H, W, 3]) with each face's box and 'id expression conf' label,
    and the current command in the top-left corner (red for STOP)."""
    out = bgr.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    for face in faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), _GREEN, max(1, int(2 * scale)))
        label = f'{face.face_id} {face.expression} {face.confidence:.2f}'
        _text(out, label, (x, max(0, y - 4)), scale)
    if command is not None:
        _text(out, f'{command.command} ({command.expression or "-"})', (6, int(28 * scale)), scale * 1.3,
              _RED if command.command == 'STOP' else _WHITE)
    return out


def _text(img, text, org, scale, color=_WHITE):
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x, y - th - base), (x + tw, y + base // 2), _BLACK, -1)
    cv2.putText(img, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
