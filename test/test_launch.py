"""launch/fer.launch.py run for real: the installed file, included by a bringup and run by launch.LaunchService
(what `ros2 launch` runs) in a child process, its node(s) as real processes over DDS; this test process asks
them for their parameters and lifecycle state through the standard services.

launch / launch_ros come from the ROS install where they import, else from the test overlay that `make test`
builds from ../shared/ros-extras (test/ros_extras.py says what happens without either).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from fer_ros.ros.fastdds_profile import NEW_VARIABLE, OLD_VARIABLE, PROFILE_NAME, profile_variables
from fer_ros.util import processes

import ros_extras
from ros_harness import LoggedProcess, requires_ros

pytestmark = [pytest.mark.ros, pytest.mark.slow, requires_ros]

PROFILE_VARIABLES = (NEW_VARIABLE, OLD_VARIABLE)
START_TIMEOUT = 120.0   # a node start loads the models; the shared 2-core machines are slow under load

# A robot bringup: it includes fer.launch.py, then starts its next process (here one that records its own
# environment, as a camera driver would inherit it). Run like `ros2 launch`: LaunchService in the main thread.
BRINGUP = '''
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

fer_launch, environment_out = sys.argv[1:3]
arguments = [tuple(argument.split(':=', 1)) for argument in sys.argv[3:]]
service = LaunchService()
service.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource(fer_launch), launch_arguments=arguments),
    ExecuteProcess(cmd=[sys.executable, '-c',
                        'import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], "w"))',
                        environment_out], output='screen'),
]))
sys.exit(service.run())
'''

# The 7 parameters that fer.launch.py's arguments can set, and two it has no argument for: a robot's file.
ROBOT_PARAMS = {
    'image_transport': 'compressed',
    'reliability': 'reliable',
    'model_path': None,            # a copy of the default model under another name (set per test)
    'backend': 'cpu',
    'detector': 'haar',
    'detector_backend': 'cpu',
    'publish_debug_image': False,
    'max_faces': 3,
    'detection_threshold': 0.7,
}


def _share() -> Path:
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('fer_ros'))


@pytest.fixture
def launch_ready():
    ros_extras.require('launch', 'launch_ros', 'launch.launch_description_sources')


class Observer:
    """An rclpy node in this process that finds the launched node and calls its services."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('launch_test_observer', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin(self) -> None:
        self.executor.spin_once(timeout_sec=0.05)

    def wait(self, condition, what: str, proc: LoggedProcess, timeout: float = START_TIMEOUT) -> None:
        try:
            processes.wait_until(condition, timeout, proc, what, step=self.spin)
        except (processes.ChildExited, TimeoutError) as exc:
            pytest.fail(str(exc))

    def call(self, srv_type, name: str, request, proc: LoggedProcess):
        client = self.node.create_client(srv_type, name)
        try:
            self.wait(client.service_is_ready, f'service {name}', proc)
            future = client.call_async(request)
            self.wait(future.done, f'the reply of {name}', proc, timeout=30.0)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def parameters(self, node: str, names: list[str], proc: LoggedProcess) -> dict:
        from rcl_interfaces.msg import ParameterType
        from rcl_interfaces.srv import GetParameters
        reply = self.call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=names), proc)
        field = {ParameterType.PARAMETER_BOOL: 'bool_value', ParameterType.PARAMETER_INTEGER: 'integer_value',
                 ParameterType.PARAMETER_DOUBLE: 'double_value', ParameterType.PARAMETER_STRING: 'string_value'}
        return {name: getattr(value, field[value.type]) for name, value in zip(names, reply.values)}

    def lifecycle_state(self, node: str, proc: LoggedProcess) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(GetState, f'{node}/get_state', GetState.Request(), proc).current_state.label

    def has_node(self, namespace: str) -> bool:
        return ('fer_node', namespace) in self.node.get_node_names_and_namespaces()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def observer():
    o = Observer()
    yield o
    o.close()


class Bringup:
    """The bringup above, run in a child process with this test's arguments."""

    def __init__(self, tmp_path: Path, arguments: dict[str, str]) -> None:
        self.environment_out = tmp_path / 'next_process_environment.json'
        cmd = [sys.executable, '-c', BRINGUP, _share() / 'launch' / 'fer.launch.py', self.environment_out,
               *(f'{name}:={value}' for name, value in arguments.items())]
        # The launching shell has no Fast DDS profile variable (scripts/with_ros.sh sets one for the tests):
        # whatever the node or the next process has comes from the launch.
        saved = {name: os.environ.pop(name) for name in PROFILE_VARIABLES if name in os.environ}
        try:
            self.proc = LoggedProcess(cmd, tmp_path / 'launch.log', cwd=tmp_path)
        finally:
            os.environ.update(saved)

    def node_environment(self, observer: Observer) -> dict[str, str]:
        """The environment of the node process the launch started (its pid from launch's log line)."""
        started = re.compile(r'\[(fer_node|fer_lifecycle_node)-\d+\]: process started with pid \[(\d+)\]')
        observer.wait(lambda: started.search(self.proc.output()), 'the node process to start', self.proc)
        pid = started.search(self.proc.output()).group(2)
        raw = Path(f'/proc/{pid}/environ').read_bytes()
        return dict(item.split('=', 1) for item in raw.decode(errors='replace').split('\0') if '=' in item)

    def next_process_environment(self, observer: Observer) -> dict[str, str]:
        observer.wait(lambda: self.environment_out.is_file() and self.environment_out.stat().st_size > 0,
                      "the bringup's next process", self.proc)
        return json.loads(self.environment_out.read_text())

    def stop(self) -> None:
        code = self.proc.stop(timeout=60.0)
        assert code == 0, f'the launch exited {code}:\n{self.proc.tail(60)}'


@pytest.fixture
def bringups():
    started: list[Bringup] = []
    yield started
    for bringup in started:
        bringup.proc.stop(timeout=60.0)


def _robot_params_file(tmp_path: Path) -> tuple[Path, dict]:
    model = tmp_path / 'robot_classifier.onnx'
    shutil.copyfile(_share() / 'models' / 'mini_xception_fer2013.onnx', model)
    values = dict(ROBOT_PARAMS, model_path=str(model))
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': values}}))
    return path, values


def test_params_file_values_reach_the_node_and_the_profile_stays_in_it(launch_ready, observer, bringups, tmp_path):
    """Plain node: every value of a robot's params file stands (no launch-argument default overrides it);
    the Fast DDS profile variable(s) of this distro are in the node's environment and not in the process the
    bringup starts after including fer.launch.py."""
    params_file, values = _robot_params_file(tmp_path)
    bringup = Bringup(tmp_path, {'params_file': str(params_file), 'image': '/robot/camera'})
    bringups.append(bringup)
    observer.wait(lambda: observer.has_node('/'), 'fer_node in the graph', bringup.proc)
    assert observer.parameters('/fer_node', list(values), bringup.proc) == values
    observer.wait(lambda: observer.node.count_subscribers('/robot/camera/compressed') > 0,
                  'the node to subscribe to the remapped compressed image topic', bringup.proc)

    profile = str(_share() / 'config' / PROFILE_NAME)
    expected = {name: profile for name in profile_variables(os.environ.get('ROS_DISTRO'))}
    node_environment = bringup.node_environment(observer)
    assert {name: node_environment.get(name) for name in PROFILE_VARIABLES if name in node_environment} == expected
    leaked = {name: value for name, value in bringup.next_process_environment(observer).items()
              if name in PROFILE_VARIABLES}
    assert leaked == {}, f'fer.launch.py leaked {leaked} into the bringup\'s next process'
    bringup.stop()


def test_given_arguments_override_the_file_in_a_namespace(launch_ready, observer, bringups, tmp_path):
    """Arguments given on the command line win over the file, the ones not given leave it alone;
    namespace:=/head_cam puts the node and its topics there; use_fastdds_profile:=false sets nothing."""
    params_file, values = _robot_params_file(tmp_path)
    bringup = Bringup(tmp_path, {'params_file': str(params_file), 'namespace': '/head_cam',
                                 'image': '/head_cam/image_raw', 'transport': 'raw', 'debug_image': 'true',
                                 'use_fastdds_profile': 'false'})
    bringups.append(bringup)
    observer.wait(lambda: observer.has_node('/head_cam'), 'fer_node in /head_cam', bringup.proc)
    expected = dict(values, image_transport='raw', publish_debug_image=True)
    assert observer.parameters('/head_cam/fer_node', list(expected), bringup.proc) == expected
    observer.wait(lambda: (observer.node.count_subscribers('/head_cam/image_raw') > 0
                           and observer.node.count_publishers('/head_cam/expressions') > 0),
                  'the node on /head_cam/image_raw and /head_cam/expressions', bringup.proc)
    node_environment = bringup.node_environment(observer)
    assert not [name for name in PROFILE_VARIABLES if name in node_environment]
    bringup.stop()


def test_managed_node_with_autostart_becomes_active(launch_ready, observer, bringups, tmp_path):
    bringup = Bringup(tmp_path, {'managed': 'true'})
    bringups.append(bringup)
    observer.wait(lambda: observer.has_node('/'), 'fer_node (managed) in the graph', bringup.proc)
    observer.wait(lambda: observer.lifecycle_state('/fer_node', bringup.proc) == 'active',
                  'the managed node to be configured and activated', bringup.proc)
    assert observer.parameters('/fer_node', ['backend'], bringup.proc) == {'backend': 'auto'}   # fer.yaml's
    bringup.stop()


def test_managed_node_without_autostart_waits_unconfigured(launch_ready, observer, bringups, tmp_path):
    bringup = Bringup(tmp_path, {'managed': 'true', 'autostart': 'false'})
    bringups.append(bringup)
    observer.wait(lambda: observer.has_node('/'), 'fer_node (managed) in the graph', bringup.proc)
    assert observer.lifecycle_state('/fer_node', bringup.proc) == 'unconfigured'
    bringup.stop()
