"""A camera gone wrong, in a process of its own: publishes malformed 640x480 bgr8 frames on ``image`` as
fast as it can (a step shorter than a row, so every one is a decode error) until SIGINT or SIGTERM, then
prints how many it sent. test/test_node_faults.py runs it beside fer_node, so the flood does not share an
interpreter (and its lock) with the test's own subscriber, which measures the node, not the test.

    python test/malformed_flood.py
"""
from __future__ import annotations

import signal
import threading

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header


def main() -> None:
    rclpy.init()
    node = Node('malformed_flood')
    pub = node.create_publisher(Image, 'image', 10)
    bad = Image(header=Header(frame_id='hammer'), height=480, width=640, encoding='bgr8', step=100,
                data=bytes(100 * 480))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sent = 0
    while not stop.is_set():
        pub.publish(bad)
        sent += 1
    print(f'sent {sent}', flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
