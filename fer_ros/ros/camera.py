"""fer_camera: a camera stand-in that publishes real face photos as a video stream.

Publishes `image` (sensor_msgs/Image, bgr8) or `image/compressed` (CompressedImage, jpeg) at
`rate_hz`, stamped with the node clock at publish time. Frames come from image files (`images`
parameter) or, by default, from the repository's photos composed into `width`x`height` frames with
`num_faces` faces (fer_ros.sample_frames). Used by `make demo`, the tests and the benchmarks.
"""
from __future__ import annotations

import sys
import time

import cv2
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fer_ros.ros.compat import interrupted_by_shutdown
from fer_ros.ros.convert import bgr_to_compressed, bgr_to_image


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
    from fer_ros.sample_frames import sample_frame
    return [sample_frame(num_faces, size=(width, height), seed=i)[0] for i in range(count)]


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__('fer_camera')
        p = {name: self.declare_parameter(name, default).value for name, default in (
            ('rate_hz', 30.0), ('duration_s', 0.0), ('num_faces', 1), ('width', 640), ('height', 480),
            ('transport', 'raw'), ('reliability', 'best_effort'), ('frame_id', 'camera'),
            ('images', ['']), ('distinct_frames', 1), ('wait_for_subscriber', True), ('jpeg_quality', 90))}
        if p['rate_hz'] <= 0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {p['rate_hz']}")
        if p['transport'] not in ('raw', 'compressed'):
            raise ValueError(f"parameter 'transport' must be raw or compressed, got {p['transport']!r}")
        self.p = p
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
        self.start = None

    def publish_next(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p['frame_id'])
        frame = self.frames[self.published % len(self.frames)]
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
