"""The package's architecture: the import contracts hold, generated ROS interfaces stay in the ROS
adapters, and no module grows without notice.

The layers, the acyclic-siblings rule, ROS out of the ROS-free parts and torch off the run-time path are
import-linter contracts (pyproject.toml, [tool.importlinter]); this test runs them. What import-linter
cannot see is checked here from the source with ``ast``: the generated ``fer_ros.msg`` / ``fer_ros.srv``
modules exist only in the colcon install tree, so the import graph of the checkout does not hold them.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / 'fer_ros'
# the only modules that may import rclpy-generated interfaces (and rclpy itself)
ROS_MODULES = ('fer_ros/ros/', 'fer_ros/evaluation/live.py', 'fer_ros/tools/demo.py', 'fer_ros/examples/')
GENERATED = ('fer_ros.msg', 'fer_ros.srv', 'fer_ros.action')
# past this many lines a module is worth a second look (a warning: cohesive modules may be longer)
LONG_MODULE_LINES = 450


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob('*.py'))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_import_contracts_are_kept():
    lint = shutil.which('lint-imports', path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip('import-linter is not installed in this environment (a development check: `make lint` runs it)')
    result = subprocess.run([lint, '--no-cache'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize('path', modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_generated_interfaces_only_in_ros_modules(path):
    rel = str(path.relative_to(REPO))
    if rel.startswith(ROS_MODULES):
        return
    wrong = [name for name in _imports(path) if name.startswith(GENERATED)]
    assert not wrong, f'{rel} imports the generated ROS interfaces {wrong}: only {ROS_MODULES} may'


def test_long_modules_are_reported():
    lengths = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in modules()}
    long = {name: n for name, n in lengths.items() if n > LONG_MODULE_LINES}
    if long:
        warnings.warn(f'modules over {LONG_MODULE_LINES} lines (split only if they hold more than one job): {long}',
                      stacklevel=1)
