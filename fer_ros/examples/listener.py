"""Example consumer of fer_node's outputs: prints each face and each command.

QoS to use (see docs/integration.md): `expressions` is published RELIABLE, VOLATILE, depth 10; subscribe
with a plain depth (10) so you get every message, or with sensor-data QoS (best effort) if you only want
the newest. `command` is RELIABLE, TRANSIENT_LOCAL, depth 1 with a deadline: a plain depth-10 subscriber
like this one matches it; a controller acting on it follows the safety contract instead
(fer_ros/examples/command_consumer.py). Run:

    install/fer_ros/lib/fer_ros/fer_listener            (ros2 run fer_ros fer_listener)
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node

from fer_ros.msg import FaceExpressionArray, HriCommand
from fer_ros.ros.compat import SHUTDOWN_EXCEPTIONS


class ExpressionListener(Node):
    def __init__(self) -> None:
        super().__init__('fer_listener')
        self.create_subscription(FaceExpressionArray, 'expressions', self.on_expressions, 10)
        self.create_subscription(HriCommand, 'command', self.on_command, 10)

    def on_expressions(self, msg: FaceExpressionArray) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        for face in msg.faces:
            print(f'[{stamp:.3f}] face {face.face_id}: {face.expression} ({face.confidence:.2f}) '
                  f'valence={face.valence:+.2f} arousal={face.arousal:+.2f}', flush=True)

    def on_command(self, msg: HriCommand) -> None:
        kind = 'heartbeat' if msg.heartbeat else 'COMMAND'
        print(f'{kind} {msg.command} (priority {msg.priority}) from face {msg.source_face_id or "-"} '
              f'{msg.expression} {msg.confidence:.2f}', flush=True)


def main(args=None) -> int:
    rclpy.init(args=args)
    node = ExpressionListener()
    try:
        rclpy.spin(node)
    except SHUTDOWN_EXCEPTIONS:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
