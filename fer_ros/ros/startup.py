"""Process start-up and shutdown shared by fer_node and fer_lifecycle_node: exit status 2 for bad
parameters (params files checked before rcl parses them), 1 for a model that cannot start, 0 for a
clean stop (Ctrl-C / SIGTERM, also while starting, or a lifecycle shutdown).

SIGINT and SIGTERM are handled here, not by rclpy: rclpy's own handler shuts the context down at
once, after which nothing can be published. Here a signal only asks the spin loop to end; the node
then publishes its final HOLD and waits (a bounded time) until the command's subscribers acknowledged
it, and only then is rclpy shut down. A second signal while that runs ends the process the usual way
(KeyboardInterrupt / SystemExit).
"""
from __future__ import annotations

import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor

from fer_ros.ros.compat import SHUTDOWN_EXCEPTIONS, init_without_signal_handlers, interrupted_by_shutdown
from fer_ros.settings import params, params_files


def _fatal(text: str) -> None:
    print(f'[FATAL] [{params.NODE_NAME}]: {text}', file=sys.stderr, flush=True)


class StopRequest:
    """SIGINT / SIGTERM set ``requested``; the second one raises as Python would without a handler."""

    def __init__(self) -> None:
        self.requested = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)
        self.requested.set()


def run_node(factory, args=None) -> int:
    """Create ``factory(files)`` and spin it until a signal or its shutdown; returns the exit status.

    The node's ``close()`` runs before rclpy shuts down (the final HOLD goes out on a valid context)."""
    argv = list(sys.argv if args is None else args)
    files = params_files.params_files(argv)
    try:
        for path in files:           # rcl would fail on these with a traceback
            params_files.load_params_file(path)
    except params.ParameterError as exc:
        _fatal(f'invalid parameter: {exc}')
        return 2
    stop = StopRequest()
    stop.install()
    try:
        init_without_signal_handlers(args)
    except Exception as exc:         # rcl rejects the arguments (e.g. a malformed -p)
        _fatal(f'invalid arguments: {type(exc).__name__}: {exc}')
        return 2
    executor = SingleThreadedExecutor()
    try:
        node = factory(files)        # a signal while the models load: the loop below ends at once
    except SHUTDOWN_EXCEPTIONS:      # a second signal while starting: not an error
        rclpy.try_shutdown()
        return 0
    except Exception as exc:
        if isinstance(exc, params.ParameterError):
            _fatal(f'invalid parameter: {exc}')
            code = 2
        else:                        # model missing/corrupt/unable to STOP, backend unavailable: fail at start
            _fatal(f'cannot start: {type(exc).__name__}: {exc}')
            code = 1
        rclpy.try_shutdown()
        return code
    try:
        executor.add_node(node)
        while rclpy.ok() and not stop.requested.is_set() and not getattr(node, 'finished', False):
            executor.spin_once(timeout_sec=0.1)
    except BaseException as exc:     # noqa: BLE001 - re-raised unless it is a signal's shutdown
        if not interrupted_by_shutdown(exc):
            raise
    finally:
        node.close()                 # the final HOLD, acknowledged or timed out
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
