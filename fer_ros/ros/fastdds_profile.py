"""Which environment variable makes Fast DDS load an XML profile, per ROS 2 distro (the one place).

Fast DDS 3 (ROS 2 Kilted and later) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and prints a deprecation
warning in every process where the old ``FASTRTPS_DEFAULT_PROFILES_FILE`` is also set. Fast DDS 2.x
(Humble, Iron, Jazzy) reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``. The project's large-image profile
(config/fastdds_large_images.xml) must reach the node AND the camera driver's process: without it a
640x480 bgr8 frame exceeds Fast DDS's default 512 KB shared-memory segment and best-effort frames are lost.

Used by launch/fer.launch.py, the demo and the node benchmark; scripts/with_ros.sh runs
``python -m fer_ros.ros.fastdds_profile PROFILE`` and evaluates the ``export`` lines it prints.
No rclpy import: the launch file and the shell script use it before any node exists.
"""
from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

NEW_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
OLD_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
# Distros whose rmw_fastrtps links Fast DDS 2.x (foxy..jazzy); every later one ships Fast DDS 3.
FASTDDS_2_DISTROS = frozenset({'foxy', 'galactic', 'humble', 'iron', 'jazzy'})
PROFILE_NAME = 'fastdds_large_images.xml'


def profile_variables(distro: str | None) -> tuple[str, ...]:
    """The variables to set for ``distro`` (a ROS_DISTRO value; None or '' counts as a newer distro).

    Both names on Fast DDS 2.x distros (only the old one is read there; the new one costs nothing and
    keeps the environment the same as on Kilted), only the new name elsewhere (no deprecation warning).
    """
    return (NEW_VARIABLE, OLD_VARIABLE) if (distro or '').lower() in FASTDDS_2_DISTROS else (NEW_VARIABLE,)


def profile_environment(profile: str, distro: str | None = None,
                        environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables (name -> path) that load ``profile`` under ``distro`` (default: $ROS_DISTRO).

    A profile the user already set under one of the distro's names is kept, and then used for every
    name, so that one choice holds for every Fast DDS version.
    """
    environ = os.environ if environ is None else environ
    names = profile_variables(environ.get('ROS_DISTRO') if distro is None else distro)
    chosen = next((environ[name] for name in names if environ.get(name)), profile)
    return {name: chosen for name in names}


def apply_profile() -> dict[str, str]:
    """Set the packaged large-image profile in this process's environment, for the processes it
    starts (node, camera): the demo and the benchmarks call it before starting any. Returns what it set."""
    from fer_ros.util.paths import find_config_file
    variables = profile_environment(find_config_file(PROFILE_NAME))
    os.environ.update(variables)
    return variables


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_ros.ros.fastdds_profile PROFILE [DISTRO]``: print shell ``export`` lines."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print('usage: python -m fer_ros.ros.fastdds_profile PROFILE_XML [DISTRO]', file=sys.stderr)
        return 2
    if not os.path.isfile(args[0]):
        print(f'Fast DDS profile {args[0]} does not exist', file=sys.stderr)
        return 2
    for name, value in profile_environment(args[0], args[1] if len(args) == 2 else None).items():
        print(f'export {name}={shlex.quote(value)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
