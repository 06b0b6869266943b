"""Launch fer_node on a robot with ROS 2 installed (Humble, Jazzy, Kilted).

    ros2 launch fer_ros fer.launch.py image:=/camera/image_raw
    ros2 launch fer_ros fer.launch.py image:=/camera/image_raw transport:=compressed namespace:=head_cam \
        model_path:=/opt/models/light_ntwrn.onnx backend:=tensorrt

    ros2 launch fer_ros fer.launch.py managed:=true                 # fer_lifecycle_node, configured + activated
    ros2 launch fer_ros fer.launch.py managed:=true autostart:=false # left unconfigured for a lifecycle manager

Arguments override the parameters file (default: share/fer_ros/config/fer.yaml). The Fast DDS
profile with a 32 MiB shared-memory segment is set for the node unless use_fastdds_profile:=false
(without it, best-effort 640x480 frames between processes are lost with Fast DDS defaults), under the
variable(s) this distro's Fast DDS reads (fer_ros/ros/fastdds_profile.py: FASTDDS_DEFAULT_PROFILES_FILE on
Kilted and later; on Humble/Jazzy FASTRTPS_DEFAULT_PROFILES_FILE too, the only one Fast DDS 2.x reads).
The camera driver's process needs the same variable(s) set (in its own launch file or shell).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from fer_ros.ros.fastdds_profile import PROFILE_NAME, profile_environment
from launch import LaunchDescription

# Launch arguments that set node parameters of the same name (checked by test/test_launch_config.py).
PARAMETER_ARGUMENTS = {
    'transport': ('image_transport', 'raw', 'raw (sensor_msgs/Image) or compressed (CompressedImage)'),
    'reliability': ('reliability', 'best_effort', 'image subscription QoS: best_effort or reliable'),
    'model_path': ('model_path', '', "ONNX / engine / checkpoint path; '' = default mini-Xception"),
    'backend': ('backend', 'auto', 'auto, onnxruntime, tensorrt or torch'),
    'detector': ('detector', 'yunet', 'face detector: yunet (ONNX), yuface (x86_64 binding) or haar'),
    'detector_backend': ('detector_backend', 'auto', "where yunet runs: auto, onnxruntime or tensorrt"),
    'debug_image': ('publish_debug_image', 'true', 'publish the annotated debug_image topic'),
}


def generate_launch_description():
    share = get_package_share_directory('fer_ros')
    args = [
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='camera image topic (for compressed: its base name, '
                                          'the node subscribes to <image>/compressed)'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'fer.yaml'),
                              description='node parameters YAML'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node and its topics'),
        DeclareLaunchArgument('managed', default_value='false',
                              description='true: start fer_lifecycle_node (managed) instead of fer_node'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='managed:=true only: configure and activate it at launch'),
        DeclareLaunchArgument('use_fastdds_profile', default_value='true',
                              description='load the large-image Fast DDS profile in the node '
                                          '(FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE, as this distro reads)'),
    ]
    args += [DeclareLaunchArgument(name, default_value=default, description=text)
             for name, (_, default, text) in PARAMETER_ARGUMENTS.items()]
    overrides = {param: (ParameterValue(LaunchConfiguration(name), value_type=bool) if param == 'publish_debug_image'
                         else LaunchConfiguration(name))
                 for name, (param, _, _) in PARAMETER_ARGUMENTS.items()}
    common = dict(
        package='fer_ros', name='fer_node', namespace=LaunchConfiguration('namespace'),
        output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('image', LaunchConfiguration('image')),
                    ('image/compressed', [LaunchConfiguration('image'), '/compressed'])],
    )
    managed = LaunchConfiguration('managed')
    node = Node(executable='fer_node', condition=UnlessCondition(managed), **common)
    # The managed node starts unconfigured. autostart: configure it at once, activate it once it is
    # inactive (the launch_ros lifecycle events; works on Humble, Jazzy and Kilted alike).
    lifecycle = LifecycleNode(executable='fer_lifecycle_node', condition=IfCondition(managed), **common)
    autostart = IfCondition(PythonExpression(["'", managed, "'.lower() == 'true' and '",
                                              LaunchConfiguration('autostart'), "'.lower() == 'true'"]))
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(lifecycle),
                                            transition_id=Transition.TRANSITION_CONFIGURE), condition=autostart)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=lifecycle, goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(lifecycle),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=autostart)
    # ROS_DISTRO (set by the ROS 2 setup.bash) picks the variable name(s); a profile already set is kept.
    profile = [SetEnvironmentVariable(name, path, condition=IfCondition(LaunchConfiguration('use_fastdds_profile')))
               for name, path in profile_environment(os.path.join(share, 'config', PROFILE_NAME)).items()]
    return LaunchDescription(args + profile + [node, lifecycle, activate, configure])
