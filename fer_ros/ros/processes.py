"""A child process (the node, the camera stand-in) with its output captured to a log file."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


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

    def __init__(self, cmd: list, log_path: Path, cwd: str | Path | None = None) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, 'wb')
        self.popen = subprocess.Popen([str(c) for c in cmd], stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=None if cwd is None else str(cwd), env=os.environ.copy())

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def tail(self, lines: int = 30) -> str:
        return '\n'.join(self.output().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Signal the process, wait up to ``timeout`` s (then kill), close the log; returns the exit code."""
        code = stop_process(self.popen, sig, timeout)
        if not self._log.closed:
            self._log.close()
        return code
