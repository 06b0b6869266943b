"""Small portability shims across ROS 2 Humble, Jazzy and Kilted."""
from __future__ import annotations

try:  # raised by spin() when rclpy's SIGINT/SIGTERM handler shut the context down
    from rclpy.executors import ExternalShutdownException
    SHUTDOWN_EXCEPTIONS: tuple[type[BaseException], ...] = (KeyboardInterrupt, ExternalShutdownException)
except ImportError:  # older rclpy
    SHUTDOWN_EXCEPTIONS = (KeyboardInterrupt,)
