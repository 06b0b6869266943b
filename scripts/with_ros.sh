#!/usr/bin/env bash
# Run a command inside the project's environment: .venv + the colcon install tree (+ system ROS 2),
# DDS discovery limited to this host, the Fast DDS large-image profile, and a ROS domain of our own
# (derived from the PID unless ROS_DOMAIN_ID is set) so parallel runs on one machine don't cross-talk.
set -eo pipefail
cd "$(dirname "$0")/.."
if [ -n "${ROS_DISTRO:-}" ] && [ -f "/opt/ros/$ROS_DISTRO/setup.bash" ]; then
  # shellcheck disable=SC1090
  source "/opt/ros/$ROS_DISTRO/setup.bash"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
# shellcheck disable=SC1091
source install/setup.bash
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$PWD/install/fer_ros/share/fer_ros/config/fastdds_large_images.xml}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}
export PYTHONUNBUFFERED=1
exec "$@"
