"""The node and the camera stand-in as child processes, and waiting for them on conditions.

One routine for the demo, the node benchmark, live bag evaluation and the ROS tests: ``start_node`` /
``start_camera`` (installed executables, ``--ros-args`` built by ``ros_args``), ``wait_until`` (a
condition, never a fixed sleep; fails early when the child exits) and ``node_is_ready`` (the node
subscribes to its image topic and publishes expressions: discovery is complete). No rclpy import
here: callers pass their own node and spin step.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fer_ros.util.paths import find_executable


def stop_process(popen: subprocess.Popen | None, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
    """Signal a running child, wait up to ``timeout`` s, then kill it; returns its exit code."""
    if popen is None:
        return None
    if popen.poll() is None:
        popen.send_signal(sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    return popen.returncode


class LoggedProcess:
    """Start ``cmd`` with stdout+stderr written to ``log_path``; stop it with a signal (SIGINT default)."""

    def __init__(self, cmd: list, log_path: Path | None, cwd: str | Path | None = None) -> None:
        """log_path None: the child writes to this process's stdout/stderr (the demo)."""
        self.name = Path(str(cmd[0])).name          # e.g. 'fer_node'
        self.log_path = None if log_path is None else Path(log_path)
        self._log = None if self.log_path is None else open(self.log_path, 'wb')
        self.popen = subprocess.Popen([str(c) for c in cmd], stdout=self._log,
                                      stderr=None if self._log is None else subprocess.STDOUT,
                                      cwd=None if cwd is None else str(cwd), env=os.environ.copy())

    def output(self) -> str:
        if self._log is None or self.log_path is None:
            return ''
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def tail(self, lines: int = 30) -> str:
        return '\n'.join(self.output().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Signal the process, wait up to ``timeout`` s (then kill), close the log; returns the exit code."""
        code = stop_process(self.popen, sig, timeout)
        if self._log is not None and not self._log.closed:
            self._log.close()
        return code


def ros_args(params: dict | None = None, remaps: dict | None = None,
             params_file: str | Path | None = None) -> list[str]:
    """``--ros-args`` for a child: a parameter file, ``-p name:=value`` (bools lower case, '' quoted,
    lists as YAML) and ``-r old:=new`` remaps."""
    args = ['--ros-args']
    if params_file:
        args += ['--params-file', str(params_file)]
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif value == '':
            value = "''"          # rcl cannot parse an empty override
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + ']'
        args += ['-p', f'{key}:={value}']
    for old, new in (remaps or {}).items():
        args += ['-r', f'{old}:={new}']
    return args


def start_node(params: dict | None = None, remaps: dict | None = None, params_file: str | Path | None = None,
               log_path: Path | None = None, executable: str | Path | None = None,
               cwd: str | Path | None = None) -> LoggedProcess:
    """The installed fer_node (or ``executable``) with these parameters.

    Raises:
        FileNotFoundError: not installed (see fer_ros.util.paths.find_executable).
    """
    exe = executable or find_executable('fer_node')
    return LoggedProcess([exe, *ros_args(params, remaps, params_file)], log_path, cwd)


def start_camera(params: dict | None = None, remaps: dict | None = None, log_path: Path | None = None,
                 executable: str | Path | None = None, cwd: str | Path | None = None) -> LoggedProcess:
    """The installed camera stand-in fer_camera (fer_ros.ros.camera) with these parameters."""
    exe = executable or find_executable('fer_camera')
    return LoggedProcess([exe, *ros_args(params, remaps)], log_path, cwd)


class ChildExited(RuntimeError):
    """The child process ended while it was waited for; the text has its exit status and log tail."""


def wait_until(condition: Callable[[], bool], timeout: float, proc: LoggedProcess | None = None,
               what: str = 'condition', step: Callable[[], None] = lambda: time.sleep(0.05)) -> None:
    """Call ``step`` (spin an rclpy node once, or sleep briefly) until ``condition()`` holds.

    Raises:
        ChildExited: ``proc`` exited first. TimeoutError: not within ``timeout`` seconds. Both name
            ``what`` and end with the child's log tail.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.popen.poll() is not None:
            raise ChildExited(f'{proc.name} exited with status {proc.popen.returncode} while waiting for {what}:\n'
                              f'{proc.tail()}')
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout:g} s waiting for {what}'
                               + (f':\n{proc.tail()}' if proc is not None else ''))
        step()


def node_is_ready(observer, image_topic: str = '/image', expressions_topic: str = 'expressions') -> bool:
    """Discovery is complete: fer_node subscribes to ``image_topic`` and publishes ``expressions_topic``,
    as ``observer`` (any rclpy Node) sees the graph."""
    return (observer.count_subscribers(image_topic) > 0
            and observer.count_publishers(observer.resolve_topic_name(expressions_topic)) > 0)


STATUS_NAME = 'expression recognition'      # fer_node's DiagnosticStatus is '<node name>: expression recognition'


def node_status(diagnostic_array) -> dict[str, str]:
    """fer_node's status in a diagnostic_msgs/DiagnosticArray (rclpy or rosbags object): its key/values
    plus '_level' and '_message'; {} when the array holds no fer_node status."""
    for status in diagnostic_array.status:
        if STATUS_NAME in status.name:
            return {kv.key: kv.value for kv in status.values} | {'_level': status.level, '_message': status.message}
    return {}
