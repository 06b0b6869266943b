"""ROS packages that a ROS install has and the PyPI wheels do not (launch, launch_ros, hri_msgs, ...).

On a machine with ROS 2 installed they import from there. Elsewhere `make test` builds them into the test
overlay from ../shared/ros-extras (scripts/ros_extras.sh) and scripts/with_ros.sh puts it on the paths.
Where neither exists (a user's fresh clone without ROS) the tests that need them skip with the reason;
under CI=true, where ../shared/ros-extras exists, a missing overlay is a failure (the build step broke).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = Path(os.environ.get('FER_ROS_EXTRAS_SRC', REPO.parent / 'shared' / 'ros-extras'))


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:   # a parent package is missing
        return False


def missing(*modules: str) -> str:
    """'' when every module imports, else why not and how to get it."""
    absent = [m for m in modules if not _importable(m)]
    if not absent:
        return ''
    return (f'{", ".join(absent)} not importable: no ROS 2 install provides it and the test overlay is not '
            f'built (`bash scripts/ros_extras.sh`, which `make test` runs, builds it from {SOURCES})')


def require(*modules: str) -> None:
    """Skip the calling test when a module is missing; fail instead under CI where the sources exist."""
    reason = missing(*modules)
    if not reason:
        return
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes') and SOURCES.is_dir():
        pytest.fail(f'CI: {reason}')
    pytest.skip(reason)
