"""The parameter table, config/fer.yaml and launch/fer.launch.py agree (no ROS needed)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from fer_ros.settings import params

REPO = Path(__file__).resolve().parents[1]


def test_fer_yaml_is_rendered_from_the_parameter_table():
    text = (REPO / 'config' / 'fer.yaml').read_text()
    assert text == params.render_yaml(), 'config/fer.yaml is stale: python -m fer_ros.settings.params > config/fer.yaml'
    values = yaml.safe_load(text)['/**']['ros__parameters']
    assert values == {p.name: p.default for p in params.PARAMETERS}
    assert params.validate_all(values) == values


def _launch_parameter_arguments() -> dict:
    tree = ast.parse((REPO / 'launch' / 'fer.launch.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'PARAMETER_ARGUMENTS':
            return ast.literal_eval(node.value)
    raise AssertionError('PARAMETER_ARGUMENTS not found in launch/fer.launch.py')


def test_every_launch_argument_sets_a_declared_parameter_with_a_valid_default():
    arguments = _launch_parameter_arguments()
    assert arguments
    for launch_name, (param_name, default, _) in arguments.items():
        assert param_name in params.PARAMETERS_BY_NAME, f'launch argument {launch_name} sets unknown {param_name}'
        definition = params.PARAMETERS_BY_NAME[param_name]
        is_bool = isinstance(definition.default, bool)
        value = {'true': True, 'false': False}.get(default, default) if is_bool else default
        assert definition.validate(type(definition.default)(value)) == definition.default


def test_launch_file_builds_where_launch_ros_imports():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; runs on a ROS 2 install')
    import importlib.util
    spec = importlib.util.spec_from_file_location('fer_launch', REPO / 'launch' / 'fer.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    description = module.generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(module.PARAMETER_ARGUMENTS) <= declared
    assert len([e for e in description.entities if isinstance(e, Node)]) == 1


@pytest.mark.parametrize('name,value,needle', [
    ('detection_threshold', 1.5, 'detection_threshold'),
    ('backend', 'cuda', 'backend'),
    ('max_faces', 2.5, 'max_faces'),
    ('publish_debug_image', 'yes', 'publish_debug_image'),
])
def test_bad_values_name_the_parameter(name, value, needle):
    with pytest.raises(params.ParameterError, match=needle):
        params.validate_all({name: value})


def test_unknown_parameter_is_rejected():
    with pytest.raises(params.ParameterError, match='unknown'):
        params.validate_all({'detection_treshold': 0.5})


def test_readme_documents_every_parameter():
    readme = (REPO / 'README.md').read_text()
    missing = [p.name for p in params.PARAMETERS if f'`{p.name}`' not in readme]
    assert not missing, f'README parameter table lacks {missing}'
    assert params.render_markdown() in readme, \
        'README parameter table is stale: paste `python -m fer_ros.settings.params --markdown` over it'


def test_launch_file_starts_either_node_with_the_same_name_and_topics():
    """launch_ros is not installable here: check the managed branch by reading the file."""
    text = (REPO / 'launch' / 'fer.launch.py').read_text()
    assert "Node(executable='fer_node', condition=UnlessCondition(managed), **common)" in text
    assert "LifecycleNode(executable='fer_lifecycle_node', condition=IfCondition(managed), **common)" in text
    assert 'TRANSITION_CONFIGURE' in text and 'TRANSITION_ACTIVATE' in text and "goal_state='inactive'" in text
    cmake = (REPO / 'CMakeLists.txt').read_text()
    assert 'fer_lifecycle_node' in cmake and (REPO / 'bin' / 'fer_lifecycle_node.in').is_file()
