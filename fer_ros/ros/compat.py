"""Small portability shims across ROS 2 Humble, Jazzy and Kilted."""
from __future__ import annotations

import rclpy

try:  # raised by spin() when rclpy's SIGINT/SIGTERM handler shut the context down
    from rclpy.executors import ExternalShutdownException
    SHUTDOWN_EXCEPTIONS: tuple[type[BaseException], ...] = (KeyboardInterrupt, ExternalShutdownException)
except ImportError:  # older rclpy
    SHUTDOWN_EXCEPTIONS = (KeyboardInterrupt,)


def interrupted_by_shutdown(exc: BaseException) -> bool:
    """True when ``exc`` only means that SIGINT/SIGTERM shut rclpy down while a spin call was running.

    rclpy's signal handler shuts the context down asynchronously: a signal that lands between a
    loop's ``rclpy.ok()`` check and its ``spin_once`` makes spin_once raise RCLError ("the given context
    is not valid") instead of ExternalShutdownException. That is a clean stop, not a failure."""
    return isinstance(exc, SHUTDOWN_EXCEPTIONS) or not rclpy.ok()


def init_without_signal_handlers(args=None) -> None:
    """rclpy.init without rclpy's SIGINT/SIGTERM handlers, which shut the context down at once (nothing
    could be published after them): the caller handles the signals (fer_ros.ros.startup)."""
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # an rclpy without the option: its handlers stay (no final HOLD on a signal)
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
