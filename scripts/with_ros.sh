#!/usr/bin/env bash
# [DISTRO=jazzy] scripts/with_ros.sh CMD...: run CMD inside the project's environment for DISTRO
# (default kilted; paths in scripts/env.sh): its venv + colcon install tree (+ system ROS 2), DDS
# discovery limited to this host, the Fast DDS large-image profile under the variable(s) this distro's
# Fast DDS reads (fer_ros/ros/fastdds_profile.py), and a ROS domain no other run of this script holds
# (unless ROS_DOMAIN_ID is set) so parallel runs on one machine don't cross-talk.
set -eo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
fer_clean_env
if [ ! -x "$FER_VENV/bin/python" ] || [ ! -f "$FER_INSTALL/setup.bash" ]; then
  echo "[with_ros] the $DISTRO environment is not built ($FER_VENV, $FER_INSTALL): run make setup DISTRO=$DISTRO" >&2
  exit 1
fi
if [ -n "$SYSTEM_ROS_SETUP" ]; then
  # shellcheck disable=SC1090
  source "$SYSTEM_ROS_SETUP"
fi
# shellcheck disable=SC1091
source "$FER_VENV/bin/activate"
# The test overlay (launch_ros, hri_msgs... that the wheels lack; scripts/ros_extras.sh builds it for tests)
if [ -f "$FER_TEST_OVERLAY/overlay.bash" ]; then
  # shellcheck disable=SC1091
  source "$FER_TEST_OVERLAY/overlay.bash"
fi
# shellcheck disable=SC1091
source "$FER_INSTALL/setup.bash"
export ROS_DISTRO=${ROS_DISTRO:-$DISTRO}   # a system ROS sets it; the wheels do not
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
profile_exports=$(python -m fer_ros.ros.fastdds_profile "$FER_INSTALL/fer_ros/share/fer_ros/config/fastdds_large_images.xml")
eval "$profile_exports"
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
  # A domain no other with_ros.sh run on this machine holds: the first free lock of 100 (tried from one
  # derived from the PID), held on fd 9, which CMD inherits, until CMD and its children end.
  lock_dir=${TMPDIR:-/tmp}/fer_ros_domains
  mkdir -p "$lock_dir"
  for i in $(seq 0 99); do
    id=$(( ($$ + i) % 100 + 1 ))
    exec 9>"$lock_dir/$id.lock"
    if flock -n 9; then export ROS_DOMAIN_ID=$id; break; fi
    exec 9>&-
  done
  [ -n "${ROS_DOMAIN_ID:-}" ] || { echo "[with_ros] all 100 ROS domains are taken by other runs" >&2; exit 1; }
fi
export PYTHONUNBUFFERED=1
exec "$@"
