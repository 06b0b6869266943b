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


def test_only_the_product_is_installed():
    """`pip install .` installs the fer_ros package only: no top-level `training` (or anything else) that
    could collide with another distribution's package in site-packages (the discovery pip runs, with
    pyproject.toml's settings)."""
    pyprojecttoml = pytest.importorskip('setuptools.config.pyprojecttoml',
                                        reason='setuptools >= 61 (the build backend pyproject.toml names) is not here')

    # the package list pip's build gets: pyproject.toml with its find directive expanded (ignore_option_errors:
    # an older setuptools, e.g. the Jetson check's, does not know the SPDX `license` string yet)
    config = pyprojecttoml.read_configuration(REPO / 'pyproject.toml', ignore_option_errors=True)
    packages = config['tool']['setuptools']['packages']
    assert 'fer_ros' in packages and 'fer_ros.perception.detectors' in packages
    assert all(p == 'fer_ros' or p.startswith('fer_ros.') for p in packages), packages


@pytest.mark.slow
@pytest.mark.parametrize('script', ['fer-train', 'fer-ablation'])
def test_training_console_scripts_run_the_checkout(script, tmp_path):
    """In the venv `make setup` makes, the training console scripts run the checkout's training/ (not
    installed into site-packages), from any working directory."""
    exe = shutil.which(script, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f'{script} is not installed in this environment (`make setup` installs it)')
    result = subprocess.run([exe, '--help'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and '--config' in result.stdout, result.stderr[-2000:]


@pytest.mark.ros
def test_generated_messages_import_from_another_process(tmp_path):
    """The hand-written package and the generated fer_ros.msg / fer_ros.srv are one `fer_ros` for a
    subscriber in any process (outside the repository, the way a user's node imports them)."""
    code = ('from fer_ros.msg import FaceExpressionArray, HriCommand; from fer_ros.srv import CalibrateNeutral; '
            'import fer_ros.pipeline; print(FaceExpressionArray.__module__)')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if result.returncode and 'No module named' in result.stderr and 'rclpy' in result.stderr:
        pytest.skip('rclpy is not importable: run through `make test` after `make setup`')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith('fer_ros.msg')
