"""fer_node: camera images in; FaceExpressionArray, HriCommand, debug image and diagnostics out.

A plain node that configures and activates itself at start (fer_ros.ros.lifecycle is the managed
variant). Everything it does is fer_ros.ros.runtime.FerRuntime over the ROS-free Pipeline.
Works on Humble, Jazzy and Kilted (only long-standing rclpy API is used).
"""
from __future__ import annotations

import sys

from rclpy.node import Node

from fer_ros.ros.runtime import FerRuntime
from fer_ros.ros.startup import run_node
from fer_ros.settings import params


class FerNode(Node):
    def __init__(self, files: list[str] | None = None) -> None:
        # undeclared names reach our callback, which refuses them naming the parameter (rclpy's own
        # refusal does not name it)
        super().__init__(params.NODE_NAME, allow_undeclared_parameters=True)
        self.runtime = FerRuntime(self, files=files)     # ParameterError -> exit 2 in run_node
        self.runtime.configure()                          # model missing/corrupt -> exit 1
        self.runtime.activate()

    def close(self) -> None:
        self.runtime.finish()                             # the final HOLD, then free everything


def main(args=None) -> int:
    return run_node(FerNode, args)


if __name__ == '__main__':
    sys.exit(main())
