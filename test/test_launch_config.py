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


def test_every_launch_argument_sets_a_declared_parameter_of_its_type():
    arguments = _launch_parameter_arguments()
    assert arguments
    for launch_name, (param_name, type_name, _) in arguments.items():
        assert param_name in params.PARAMETERS_BY_NAME, f'launch argument {launch_name} sets unknown {param_name}'
        assert type(params.PARAMETERS_BY_NAME[param_name].default).__name__ == type_name, launch_name


def _node_actions(module, arguments: dict[str, str]) -> list:
    """What fer.launch.py's node-making function returns for these command-line arguments (the rest at
    their declared defaults), without running anything."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    description = module.generate_launch_description()
    context = LaunchContext()
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations[entity.name] = arguments.get(entity.name, entity.default_value[0].text)
    [make_nodes] = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    return make_nodes.execute(context)


@pytest.mark.ros
def test_launch_file_starts_one_node_per_mode():
    """Where launch_ros imports: exactly one node per mode (a LifecycleNode is a Node too: count by exact
    class). test_launch.py runs the file for real (parameters, namespace, environment)."""
    import ros_extras
    ros_extras.require('launch', 'launch_ros')
    import importlib.util
    spec = importlib.util.spec_from_file_location('fer_launch', REPO / 'launch' / 'fer.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch_ros.actions import LifecycleNode, Node

    plain = [a for a in _node_actions(module, {}) if isinstance(a, Node)]
    assert [(type(a), a.node_executable) for a in plain] == [(Node, 'fer_node')]
    managed = [a for a in _node_actions(module, {'managed': 'true'}) if isinstance(a, Node)]
    assert [(type(a), a.node_executable) for a in managed] == [(LifecycleNode, 'fer_lifecycle_node')]


@pytest.mark.parametrize('name,value,needle', [
    ('detection_threshold', 1.5, 'detection_threshold'),
    ('backend', 'openvino', 'backend'),
    ('max_faces', 2.5, 'max_faces'),
    ('publish_debug_image', 'yes', 'publish_debug_image'),
])
def test_bad_values_name_the_parameter(name, value, needle):
    with pytest.raises(params.ParameterError, match=needle):
        params.validate_all({name: value})


def test_unknown_parameter_is_rejected():
    with pytest.raises(params.ParameterError, match='unknown'):
        params.validate_all({'detection_treshold': 0.5})


def test_integration_guide_documents_every_parameter():
    guide = (REPO / 'docs' / 'integration.md').read_text()
    missing = [p.name for p in params.PARAMETERS if f'`{p.name}`' not in guide]
    assert not missing, f'the parameter table in docs/integration.md lacks {missing}'
    assert params.render_markdown() in guide, \
        'docs/integration.md parameter table is stale: paste `python -m fer_ros.settings.params --markdown` over it'


def test_both_executables_are_installed():
    cmake = (REPO / 'CMakeLists.txt').read_text()
    assert 'fer_lifecycle_node=fer_ros.ros.lifecycle' in cmake and (REPO / 'bin' / 'executable.in').is_file()
