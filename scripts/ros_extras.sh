#!/usr/bin/env bash
# [DISTRO=kilted|jazzy] scripts/ros_extras.sh: build the TEST overlay of ROS packages that a ROS install has
# and no reachable registry serves (launch, launch_xml, launch_yaml, launch_ros, composition_interfaces,
# ros4hri's hri_msgs), from the unmodified public sources in ../shared/ros-extras, for the active DISTRO.
#
# For tests and CI only (`make test` runs it before pytest); the product never reads it: on a robot these
# packages come from the ROS install (apt: ros-<distro>-launch-ros, ros-<distro>-hri-msgs). What the distro's
# ROS environment already imports is not built. Without ../shared/ros-extras (a user's fresh clone) it
# builds nothing and the tests that need it skip with the reason (test/ros_extras.py).
#
# Layout: $FER_TEST_OVERLAY (scripts/env.sh: test-overlay/ for kilted, test-overlay-DISTRO/ otherwise) is one
# prefix: colcon --merge-install of the two message packages, and `pip install --no-deps --prefix` of the
# pure-Python launch packages plus their two PyPI dependencies (requirements-ros-extras.txt) into the same
# lib/pythonX.Y/site-packages. scripts/with_ros.sh sources its overlay.bash when it exists.
# Idempotent: a stamp keyed by the sources' commits, this script, the pins and the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
fer_clean_env
SRC=${FER_ROS_EXTRAS_SRC:-$ROOT/../shared/ros-extras}
OVERLAY=$FER_TEST_OVERLAY
say() { echo "[ros-extras $DISTRO] $*" >&2; }

# Which upstream branch serves this distro (../shared/ros-extras/README.md: Kilted has no branch of its own
# and builds from rolling; Humble has no wheels to build against).
case "$DISTRO" in
  kilted) BRANCH=rolling ;;
  jazzy) BRANCH=jazzy ;;
  *) say "no sources for $DISTRO in $SRC (kilted and jazzy have them)"; exit 0 ;;
esac

if [ ! -x "$FER_VENV/bin/python" ] || [ ! -f "$FER_INSTALL/setup.bash" ]; then
  say "the $DISTRO environment is not built: run make setup DISTRO=$DISTRO first"; exit 1
fi

# What the distro's own ROS environment (system ROS or wheels, without this overlay) already has.
ros_has() {  # ros_has MODULE...: 0 when every module imports there
  env -u PYTHONPATH bash -c '
    set -e
    [ -z "$1" ] || source "$1"
    source "$2/bin/activate"
    shift 2
    for module in "$@"; do python -c "import $module" 2>/dev/null || exit 1; done' \
    _ "$SYSTEM_ROS_SETUP" "$FER_VENV" "$@"
}
need_launch=1; need_composition=1; need_hri=1
ros_has launch launch_ros launch_xml launch_yaml && need_launch=0
ros_has composition_interfaces.srv && need_composition=0
ros_has hri_msgs.msg && need_hri=0
if [ $need_launch$need_composition$need_hri = 000 ]; then
  say "launch_ros and hri_msgs come from the ROS install; nothing to build"
  rm -rf "$OVERLAY"; exit 0
fi
if [ ! -d "$SRC/src" ]; then
  say "no $SRC: tests that need launch_ros / hri_msgs skip with the reason"; exit 0
fi

PY=$FER_VENV/bin/python
PY_VERSION=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
key=$(cat "$SRC/SOURCES.md" scripts/ros_extras.sh requirements-ros-extras.txt 2>/dev/null | sha256sum | cut -c1-16)
key="$key $BRANCH py$PY_VERSION need:$need_launch$need_composition$need_hri"
STAMP=$OVERLAY/.stamp
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] && [ -f "$OVERLAY/overlay.bash" ]; then exit 0; fi

say "building the test overlay in $OVERLAY (log: $OVERLAY/build.log)"
rm -rf "$OVERLAY"
mkdir -p "$OVERLAY/install"
LOG=$OVERLAY/build.log
run() {  # run CMD...: quiet; the log's tail on failure
  if ! "$@" >>"$LOG" 2>&1; then
    say "FAILED: $* (last lines of $LOG):"; tail -n 40 "$LOG" >&2; exit 1
  fi
}
# shellcheck disable=SC1090
[ -z "$SYSTEM_ROS_SETUP" ] || source "$SYSTEM_ROS_SETUP"
# shellcheck disable=SC1091
source "$FER_VENV/bin/activate"

# Message packages: built like the project's own messages (scripts/setup.sh), merged into one prefix.
packages=()
[ $need_composition = 0 ] || packages+=("$SRC/src/rcl_interfaces-$BRANCH/composition_interfaces")
[ $need_hri = 0 ] || packages+=("$SRC/src/hri_msgs-humble-devel")
if [ ${#packages[@]} -gt 0 ]; then
  cmake_args=(-DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY")
  if [ -z "$SYSTEM_ROS_SETUP" ]; then
    export AMENT_PREFIX_PATH=$FER_VENV CMAKE_PREFIX_PATH=$FER_VENV
    cmake_args+=("-DCMAKE_PROJECT_INCLUDE=$ROOT/cmake/fix_wheel_includes.cmake")
  fi
  run colcon --log-base "$OVERLAY/log" build --merge-install --base-paths "${packages[@]}" \
    --build-base "$OVERLAY/build" --install-base "$OVERLAY/install" --event-handlers console_direct- \
    --cmake-args "${cmake_args[@]}"
fi

# Pure-Python launch packages into the same prefix (no dependency resolution: their ROS dependencies come
# from the distro, their two PyPI ones are pinned in requirements-ros-extras.txt).
if [ $need_launch = 1 ]; then
  PIP=("$PY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation --prefix "$OVERLAY/install")
  run "${PIP[@]}" --require-hashes -r requirements-ros-extras.txt
  run "${PIP[@]}" "$SRC/src/launch-$BRANCH/launch" "$SRC/src/launch-$BRANCH/launch_xml" \
    "$SRC/src/launch-$BRANCH/launch_yaml" "$SRC/src/launch_ros-$BRANCH/launch_ros"
fi
# The environment script with_ros.sh sources: colcon's (AMENT_PREFIX_PATH, PYTHONPATH, LD_LIBRARY_PATH of the
# message packages) where it built any, plus the site-packages folder pip wrote into.
site=$OVERLAY/install/lib/python$PY_VERSION/site-packages
{
  echo "# fer_ros test overlay ($DISTRO, from $SRC): sourced by scripts/with_ros.sh"
  if [ ${#packages[@]} -gt 0 ]; then
    echo "source '$OVERLAY/install/local_setup.bash'"
  fi
  echo "export PYTHONPATH='$site'\${PYTHONPATH:+:\$PYTHONPATH}"
  echo "export FER_TEST_OVERLAY_SOURCES='$SRC'"
} >"$OVERLAY/overlay.bash"
echo "$key" >"$STAMP"
say "done ($(du -sh "$OVERLAY/install" | cut -f1) installed)"
