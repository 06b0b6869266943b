# Sourced by scripts/setup.sh and scripts/with_ros.sh: which ROS 2 distro, and where its environment lives.
#
# DISTRO (default: the sourced ROS_DISTRO, else kilted) picks one environment of its own:
#   kilted: .venv         build/         install/         log/
#   other:  .venv-DISTRO  build-DISTRO/  install-DISTRO/  log-DISTRO/
# (+ test-overlay[-DISTRO]/: launch_ros, hri_msgs... for tests, built by scripts/ros_extras.sh)
# so the distros never share a venv or a colcon tree and switching needs no cleanup.
# ROS 2 comes from a system install when /opt/ros/DISTRO/setup.bash exists (or ROS_SETUP names a
# setup.bash), else from the PyPI wheels pinned in requirements-ros-DISTRO.txt.
# Python: the system ROS's python3, else PYTHON, else FER_DISTRO_PYTHON below.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DISTRO=${DISTRO:-${ROS_DISTRO:-kilted}}
if [ "$DISTRO" = kilted ]; then FER_SUFFIX=''; else FER_SUFFIX="-$DISTRO"; fi
FER_VENV=$ROOT/.venv$FER_SUFFIX
FER_BUILD=$ROOT/build$FER_SUFFIX
FER_INSTALL=$ROOT/install$FER_SUFFIX
FER_LOG=$ROOT/log$FER_SUFFIX
FER_TEST_OVERLAY=$ROOT/test-overlay$FER_SUFFIX
FER_ROS_REQUIREMENTS=$ROOT/requirements-ros-$DISTRO.txt

SYSTEM_ROS_SETUP=${ROS_SETUP:-}
if [ -z "$SYSTEM_ROS_SETUP" ] && [ -f "/opt/ros/$DISTRO/setup.bash" ]; then
  SYSTEM_ROS_SETUP=/opt/ros/$DISTRO/setup.bash
fi

# The Python of each distro's wheel environment: the one its Ubuntu release ships where the wheels allow.
# Jazzy: 3.12 (Ubuntu 24.04). Kilted: 3.11 (Kilted is Ubuntu 24.04 too, but torch 2.13.0 CPU is served for
# cp311 from local disk here; on cp312 PyPI has only the CUDA build). A system ROS 2 brings its own python3.
case "$DISTRO" in
  kilted) FER_DISTRO_PYTHON=3.11 ;;
  jazzy) FER_DISTRO_PYTHON=3.12 ;;
  *) FER_DISTRO_PYTHON=3 ;;
esac

# find_python VERSION: print the path of a working pythonVERSION (PATH first, then pyenv's versions,
# whose shims exist for every installed version but run only the selected one).
find_python() {
  local version=$1 candidate root
  for candidate in "python$version" "/usr/bin/python$version" "/usr/local/bin/python$version"; do
    if "$candidate" -c '' >/dev/null 2>&1; then
      "$candidate" -c 'import sys; print(sys.executable)'; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    for candidate in $(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}(\.|$)" | sort -V -r); do
      if [ -x "$root/versions/$candidate/bin/python$version" ]; then
        echo "$root/versions/$candidate/bin/python$version"; return 0
      fi
    done
  fi
  return 1
}

# drop_repo_paths VAR: remove the entries under this repository from the colon list in VAR, so that an
# environment sourced before (another distro's venv or install tree) does not leak into this one.
drop_repo_paths() {
  local var=$1 entry kept='' IFS=:
  for entry in ${!var:-}; do
    case "$entry" in "$ROOT"/*|"$ROOT") ;; *) kept=${kept:+$kept:}$entry ;; esac
  done
  if [ -n "$kept" ]; then export "$var=$kept"; else unset "$var"; fi
}

# fer_clean_env: forget any fer_ros environment this shell had (venv, colcon trees of any distro).
fer_clean_env() {
  local var
  for var in PATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH; do
    drop_repo_paths "$var"
  done
  case "${VIRTUAL_ENV:-}" in "$ROOT"/*) unset VIRTUAL_ENV ;; esac
  if [ -n "${ROS_DISTRO:-}" ] && [ "$ROS_DISTRO" != "$DISTRO" ]; then
    if [ -n "${AMENT_PREFIX_PATH:-}" ]; then   # a system ROS 2 of another distro is sourced
      echo "[fer_ros] this shell has ROS 2 $ROS_DISTRO sourced ($AMENT_PREFIX_PATH); DISTRO=$DISTRO needs a shell without it" >&2
      return 1
    fi
    unset ROS_DISTRO   # left by with_ros.sh of another distro's wheel environment
  fi
}
