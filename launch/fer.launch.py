"""Launch fer_node on a robot with ROS 2 installed (Humble, Jazzy, Kilted).

    ros2 launch fer_ros fer.launch.py params_file:=/robot/fer.yaml image:=/camera/image_raw
    ros2 launch fer_ros fer.launch.py image:=/camera/image_raw transport:=compressed namespace:=head_cam \
        model_path:=/opt/models/light_ntwrn.onnx backend:=tensorrt

    ros2 launch fer_ros fer.launch.py managed:=true                 # fer_lifecycle_node, configured + activated
    ros2 launch fer_ros fer.launch.py managed:=true autostart:=false # left unconfigured for a lifecycle manager

Parameters come from params_file (default: share/fer_ros/config/fer.yaml). The convenience arguments in
PARAMETER_ARGUMENTS (transport, model_path, backend, ...) override the file only when given on the command
line: their default is FROM_PARAMS_FILE, which passes nothing, so a robot's params file is never overridden
by a default it did not ask for.

The Fast DDS profile with a 32 MiB shared-memory segment is put into the node's own process environment
(not this launch's: an including bringup's later processes, e.g. a camera driver, do not inherit it) unless
use_fastdds_profile:=false. Without it, best-effort 640x480 frames between processes are lost with Fast DDS
defaults. The variable(s) are the ones this distro's Fast DDS reads (fer_ros/ros/fastdds_profile.py:
FASTDDS_DEFAULT_PROFILES_FILE on Kilted and later; on Humble/Jazzy FASTRTPS_DEFAULT_PROFILES_FILE too).
The camera driver's process needs the same variable(s) set (in its own launch file or shell).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from fer_ros.ros.fastdds_profile import PROFILE_NAME, profile_environment

# The default of every convenience argument: "not given", i.e. the params file's value stands.
FROM_PARAMS_FILE = '<params_file>'
# Launch arguments that set the node parameter of the same meaning: argument -> (parameter, type, text).
# Checked against the parameter table by test/test_launch_config.py.
PARAMETER_ARGUMENTS = {
    'transport': ('image_transport', 'str', 'raw (sensor_msgs/Image) or compressed (CompressedImage)'),
    'reliability': ('reliability', 'str', 'image subscription QoS: best_effort or reliable'),
    'model_path': ('model_path', 'str', "ONNX / engine / checkpoint path; '' = default mini-Xception"),
    'backend': ('backend', 'str', 'classifier inference backend (see the parameter table)'),
    'detector': ('detector', 'str', 'face detector: yunet, yuface or haar'),
    'detector_backend': ('detector_backend', 'str', 'where the yunet detector runs (see the parameter table)'),
    'debug_image': ('publish_debug_image', 'bool', 'publish the annotated debug_image topic: true or false'),
    'hri_output': ('hri_output', 'bool', "also publish ROS4HRI's REP-155 face topics (hri_msgs): true or false"),
}
_TYPES = {'str': str, 'bool': bool}


def _is_true(context, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).strip().lower() == 'true'


def _node_actions(context):
    """The node (plain or managed) with the parameters and environment this launch's arguments ask for."""
    share = get_package_share_directory('fer_ros')
    given = {}   # only the arguments given on the command line: they override the params file
    for argument, (parameter, type_name, _) in PARAMETER_ARGUMENTS.items():
        if LaunchConfiguration(argument).perform(context) != FROM_PARAMS_FILE:
            given[parameter] = ParameterValue(LaunchConfiguration(argument), value_type=_TYPES[type_name])
    image = LaunchConfiguration('image').perform(context)
    # ROS_DISTRO (set by the ROS 2 setup.bash) picks the variable name(s); a profile already set is kept.
    environment = (profile_environment(os.path.join(share, 'config', PROFILE_NAME), environ=context.environment)
                   if _is_true(context, 'use_fastdds_profile') else {})
    common = dict(
        package='fer_ros', name='fer_node', namespace=LaunchConfiguration('namespace').perform(context),
        output='screen', emulate_tty=True, additional_env=environment,
        parameters=[LaunchConfiguration('params_file').perform(context), given],
        remappings=[('image', image), ('image/compressed', image + '/compressed')],
    )
    if not _is_true(context, 'managed'):
        return [Node(executable='fer_node', **common)]
    # The managed node starts unconfigured. autostart: configure it at once, activate it once it is
    # inactive (the launch_ros lifecycle events; works on Humble, Jazzy and Kilted alike).
    lifecycle = LifecycleNode(executable='fer_lifecycle_node', **common)
    if not _is_true(context, 'autostart'):
        return [lifecycle]

    def change_state(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(lifecycle), transition_id=transition))

    activate = RegisterEventHandler(OnStateTransition(target_lifecycle_node=lifecycle, goal_state='inactive',
                                                      entities=[change_state(Transition.TRANSITION_ACTIVATE)]))
    return [lifecycle, activate, change_state(Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    share = get_package_share_directory('fer_ros')
    args = [
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='camera image topic (for compressed: its base name, '
                                          'the node subscribes to <image>/compressed)'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'fer.yaml'),
                              description='node parameters YAML (its values stand unless an argument below is given)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node and its topics'),
        DeclareLaunchArgument('managed', default_value='false',
                              description='true: start fer_lifecycle_node (managed) instead of fer_node'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='managed:=true only: configure and activate it at launch'),
        DeclareLaunchArgument('use_fastdds_profile', default_value='true',
                              description="load the large-image Fast DDS profile in the node's process "
                                          '(FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE, as this distro reads)'),
    ]
    args += [DeclareLaunchArgument(name, default_value=FROM_PARAMS_FILE,
                                   description=f'{text} (sets parameter {parameter}; default: the params file)')
             for name, (parameter, _, text) in PARAMETER_ARGUMENTS.items()]
    return LaunchDescription(args + [OpaqueFunction(function=_node_actions)])
