"""package.xml names only rosdep keys that ros/rosdistro defines (rosdep/keys.yaml lists them with their
source), so `rosdep install --from-paths src` resolves every dependency; and only run-time needs are run-time
dependencies (no x86-only binding, no benchmark tool, no pip key that would write into the system Python)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPENDENCY_TAGS = ('depend', 'build_depend', 'buildtool_depend', 'exec_depend', 'test_depend',
                   'build_export_depend', 'doc_depend')


def _dependencies() -> dict[str, list[str]]:
    root = ET.parse(REPO / 'package.xml').getroot()
    return {tag: [e.text.strip() for e in root.findall(tag)] for tag in DEPENDENCY_TAGS}


def _known_keys() -> dict:
    return yaml.safe_load((REPO / 'rosdep' / 'keys.yaml').read_text())


def test_every_dependency_is_a_recorded_rosdep_key():
    known = _known_keys()
    valid = set(known['ros_packages']) | set(known['system_keys'])
    unknown = {tag: [k for k in keys if k not in valid] for tag, keys in _dependencies().items()}
    assert not any(unknown.values()), f'package.xml keys that rosdep/keys.yaml does not record: {unknown}'


def test_system_keys_record_their_source():
    for key, entry in _known_keys()['system_keys'].items():
        assert entry['file'] in ('rosdep/base.yaml', 'rosdep/python.yaml'), key
        assert entry['ubuntu'].split()[0] in ('apt', 'pip'), key


def test_run_time_dependencies_are_what_the_node_needs():
    dependencies = _dependencies()
    run_time = set(dependencies['depend'] + dependencies['exec_depend'])
    assert {'rclpy', 'python3-numpy', 'python3-opencv', 'python3-yaml', 'launch_ros'} <= run_time
    assert not [k for k in run_time if k.endswith('-pip')], 'pip keys install into the system Python (PEP 668)'
    assert not run_time & {'python3-psutil', 'python3-matplotlib', 'python3-pytest'}, 'tools are not run time'


def test_the_python_keys_are_in_the_robot_requirements_or_from_apt():
    """What package.xml leaves to pip (ONNX Runtime) is in each robot requirements file."""
    for name in ('requirements-robot-jazzy.txt', 'requirements-robot-humble.txt'):
        text = (REPO / name).read_text()
        assert 'onnxruntime==' in text, name
        assert 'opencv' not in text, f'{name}: OpenCV comes from apt (python3-opencv)'
