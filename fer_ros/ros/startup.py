"""Process start-up and shutdown shared by fer_node and fer_lifecycle_node: exit status 2 for bad
parameters (params files checked before rcl parses them), 1 for a model that cannot start, 0 for a
clean stop (Ctrl-C / SIGTERM, also while starting, or a lifecycle shutdown)."""
from __future__ import annotations

import sys

import rclpy
from rclpy.executors import SingleThreadedExecutor

from fer_ros.ros.compat import SHUTDOWN_EXCEPTIONS, interrupted_by_shutdown
from fer_ros.settings import params, params_files


def _fatal(text: str) -> None:
    print(f'[FATAL] [{params.NODE_NAME}]: {text}', file=sys.stderr, flush=True)


def run_node(factory, args=None) -> int:
    """Create ``factory(files)`` and spin it until shutdown; returns the exit status."""
    argv = list(sys.argv if args is None else args)
    files = params_files.params_files(argv)
    try:
        for path in files:           # rcl would fail on these with a traceback
            params_files.load_params_file(path)
    except params.ParameterError as exc:
        _fatal(f'invalid parameter: {exc}')
        return 2
    try:
        rclpy.init(args=args)
    except Exception as exc:         # rcl rejects the arguments (e.g. a malformed -p)
        _fatal(f'invalid arguments: {type(exc).__name__}: {exc}')
        return 2
    # Created before the slow start-up (model loading): if SIGINT/SIGTERM arrives while the node is
    # starting, rclpy has already shut the context down and creating an executor then would fail.
    executor = SingleThreadedExecutor()
    try:
        node = factory(files)
    except SHUTDOWN_EXCEPTIONS:      # Ctrl-C / SIGTERM while starting: not an error
        rclpy.try_shutdown()
        return 0
    except Exception as exc:
        if not rclpy.ok():           # interrupted while starting: not an error
            return 0
        if isinstance(exc, params.ParameterError):
            _fatal(f'invalid parameter: {exc}')
            code = 2
        else:                        # model missing/corrupt, backend unavailable: fail at start, clearly
            _fatal(f'cannot start: {type(exc).__name__}: {exc}')
            code = 1
        rclpy.try_shutdown()
        return code
    try:
        executor.add_node(node)
        while rclpy.ok() and not getattr(node, 'finished', False):
            executor.spin_once(timeout_sec=0.2)
    except BaseException as exc:     # noqa: BLE001 - re-raised unless it is a signal's shutdown
        if not interrupted_by_shutdown(exc):
            raise
    finally:
        node.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
