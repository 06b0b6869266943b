"""rclpy message <-> core types. Images go through the ROS-free fer_ros.io.image_codec (decoding:
``image_codec.decode_message``, shared with the bag evaluation)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest

from fer_ros.core.types import Command, FrameResult, HeadPose
from fer_ros.io.image_codec import encode_compressed, encode_image
from fer_ros.msg import FaceExpression, FaceExpressionArray, HriCommand


def bgr_to_image(bgr: np.ndarray, header, encoding: str = 'bgr8') -> Image:
    msg = Image()
    msg.header = header
    msg.encoding, msg.height, msg.width, msg.step, data, msg.is_bigendian = encode_image(bgr, encoding)
    msg.data = data
    return msg


def bgr_to_compressed(bgr: np.ndarray, header, fmt: str = 'jpeg', quality: int = 90) -> CompressedImage:
    msg = CompressedImage()
    msg.header = header
    msg.format, msg.data = encode_compressed(bgr, fmt, quality)
    return msg


def _roi(box, width: int, height: int) -> RegionOfInterest:
    """Face box (x, y, w, h floats, may exceed the image) -> RegionOfInterest clipped to the image."""
    x0 = int(np.clip(round(box[0]), 0, width))
    y0 = int(np.clip(round(box[1]), 0, height))
    x1 = int(np.clip(round(box[0] + box[2]), 0, width))
    y1 = int(np.clip(round(box[1] + box[3]), 0, height))
    return RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0, do_rectify=False)


def result_to_msg(result: FrameResult, header, width: int, height: int) -> FaceExpressionArray:
    """FrameResult -> FaceExpressionArray; every face gets the input image's header."""
    msg = FaceExpressionArray(header=header, labels=list(result.labels))
    for face in result.faces:
        msg.faces.append(FaceExpression(
            header=header, face_id=face.face_id, roi=_roi(face.box, width, height),
            expression=face.expression, confidence=float(face.confidence),
            probabilities=[float(p) for p in face.probabilities],
            valence=float(face.valence), arousal=float(face.arousal),
            detection_score=float(face.detection_score),
            person_id=face.person_id, person_name=face.person_name,
            head_yaw=_degrees(face.head_pose, 'yaw'), head_pitch=_degrees(face.head_pose, 'pitch'),
            head_roll=_degrees(face.head_pose, 'roll'),
            attending=bool(face.attending), attention=face.attention, may_command=bool(face.may_command)))
    return msg


def _degrees(pose: HeadPose | None, angle: str) -> float:
    return float('nan') if pose is None else float(getattr(pose, angle))


def command_to_msg(command: Command, header) -> HriCommand:
    return HriCommand(header=header, command=command.command, source_face_id=command.source_face_id,
                      expression=command.expression, confidence=float(command.confidence),
                      priority=int(command.priority), heartbeat=bool(command.heartbeat))
