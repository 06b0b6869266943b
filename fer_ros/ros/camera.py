"""fer_camera: a camera stand-in that publishes real face photos as a video stream.

Publishes `image` (sensor_msgs/Image, bgr8) or `image/compressed` (CompressedImage, jpeg) at
`rate_hz`, stamped with the node clock at publish time. Frames come from image files (`images`
parameter) or, by default, from the repository's photos composed into `width`x`height` frames with
`num_faces` faces (fer_ros.sample_frames). Used by `make demo`, the tests and the benchmarks.

With `newcomer_period_s` > 0 (composed frames, `num_faces` >= 1) the last face comes and goes: absent for
the first half of each period, present for the second; the stamp of each frame where it reappears is
published on `newcomers` (std_msgs/Header), so an observer can time how soon the node reports a face
that enters a running stream (`make bench-node`).

With `pan_px_s` != 0 the frames turn like a panning camera: each is shifted sideways by `pan_px_s` pixels
per second of its stream time (wrapping around), so nearly every pixel changes from frame to frame (the
worst case of the whole-frame scan's scene-change gate, fer_ros.perception.scene_change).
"""
from __future__ import annotations

import sys
import time
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fer_ros.ros.compat import interrupted_by_shutdown
from fer_ros.ros.convert import bgr_to_compressed, bgr_to_image
from fer_ros.sample_frames import MARGIN, background, sample_frame


def load_frames(paths: list[str], num_faces: int, width: int, height: int, count: int) -> list:
    """The frames to cycle through: the given image files, or ``count`` composed sample frames."""
    if paths:
        frames = []
        for path in paths:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"parameter 'images': cannot read {path}")
            frames.append(image)
        return frames
    return [sample_frame(num_faces, size=(width, height), seed=i)[0] for i in range(count)]


def without_last_face(num_faces: int, width: int, height: int):
    """(frame with ``num_faces`` composed faces, the same frame with the last face painted over by the
    background): the two frames of the newcomer mode; every other face keeps its pixels."""
    frame, boxes = sample_frame(num_faces, size=(width, height))
    empty = frame.copy()
    x, y, w, h = boxes[-1]
    grow = MARGIN + 0.1               # the pasted patch reaches MARGIN of the face size beyond its box
    x0, y0 = max(0, int(x - grow * w)), max(0, int(y - grow * h))
    x1, y1 = min(width, int(x + w + grow * w) + 1), min(height, int(y + h + grow * h) + 1)
    empty[y0:y1, x0:x1] = background((width, height))[y0:y1, x0:x1]
    return frame, empty


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__('fer_camera')
        p: dict[str, Any] = {name: self.declare_parameter(name, default).value for name, default in (
            ('rate_hz', 30.0), ('duration_s', 0.0), ('num_faces', 1), ('width', 640), ('height', 480),
            ('transport', 'raw'), ('reliability', 'best_effort'), ('frame_id', 'camera'),
            ('images', ['']), ('distinct_frames', 1), ('wait_for_subscriber', True), ('jpeg_quality', 90),
            ('newcomer_period_s', 0.0), ('pan_px_s', 0.0))}
        if p['rate_hz'] <= 0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {p['rate_hz']}")
        newcomer = p['newcomer_period_s'] > 0
        if newcomer and (p['num_faces'] < 1 or any(p['images'])):
            raise ValueError("parameter 'newcomer_period_s' needs composed frames (no 'images') and num_faces >= 1")
        if p['transport'] not in ('raw', 'compressed'):
            raise ValueError(f"parameter 'transport' must be raw or compressed, got {p['transport']!r}")
        self.p = p
        if newcomer:
            self.with_newcomer, self.without_newcomer = without_last_face(p['num_faces'], p['width'], p['height'])
            # frames per half period (absent, then present)
            self.newcomer_half = max(1, round(p['newcomer_period_s'] * p['rate_hz'] / 2))
            self.newcomer_pub = self.create_publisher(Header, 'newcomers', 10)
        else:
            self.frames = load_frames([x for x in p['images'] if x], p['num_faces'], p['width'], p['height'],
                                      max(1, p['distinct_frames']))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if p['reliability'] == 'best_effort' else 10,
                         reliability=(ReliabilityPolicy.BEST_EFFORT if p['reliability'] == 'best_effort'
                                      else ReliabilityPolicy.RELIABLE),
                         durability=DurabilityPolicy.VOLATILE)
        if p['transport'] == 'compressed':
            self.pub = self.create_publisher(CompressedImage, 'image/compressed', qos)
        else:
            self.pub = self.create_publisher(Image, 'image', qos)
        self.published = 0
        self.start: float | None = None     # monotonic time of the first frame

    def publish_next(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p['frame_id'])
        if self.p['newcomer_period_s'] > 0:
            present = (self.published // self.newcomer_half) % 2 == 1
            frame = self.with_newcomer if present else self.without_newcomer
            if present and self.published % self.newcomer_half == 0:
                self.newcomer_pub.publish(header)         # before the frame: the observer knows it first
        else:
            frame = self.frames[self.published % len(self.frames)]
        if self.p['pan_px_s']:
            shift = round(self.p['pan_px_s'] * self.published / self.p['rate_hz']) % frame.shape[1]
            frame = np.roll(frame, shift, axis=1)
        if self.p['transport'] == 'compressed':
            msg = bgr_to_compressed(frame, header, 'jpeg', self.p['jpeg_quality'])
        else:
            msg = bgr_to_image(frame, header)
        self.pub.publish(msg)
        self.published += 1

    def run(self) -> None:
        """Publish at rate_hz on a fixed schedule (no drift) until duration_s (0 = forever)."""
        if self.p['wait_for_subscriber']:
            while rclpy.ok() and self.pub.get_subscription_count() == 0:
                rclpy.spin_once(self, timeout_sec=0.05)
        period = 1.0 / self.p['rate_hz']
        self.start = time.monotonic()
        deadline = self.start + self.p['duration_s'] if self.p['duration_s'] > 0 else float('inf')
        next_time = self.start
        while rclpy.ok() and next_time < deadline:
            self.publish_next()
            next_time += period
            rclpy.spin_once(self, timeout_sec=max(0.0, next_time - time.monotonic()))
            while rclpy.ok() and time.monotonic() < next_time:   # spin_once may return early
                time.sleep(max(0.0, next_time - time.monotonic()))


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = CameraNode()
    except ValueError as exc:
        rclpy.logging.get_logger('fer_camera').fatal(str(exc))
        rclpy.try_shutdown()
        return 2
    try:
        node.run()
    except BaseException as exc:     # noqa: BLE001 - re-raised unless it is a signal's shutdown
        if not interrupted_by_shutdown(exc):
            raise
    finally:
        node.get_logger().info(f'published {node.published} frames')
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
