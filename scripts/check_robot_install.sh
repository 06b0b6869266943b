#!/usr/bin/env bash
# CI: the README's robot quick start, run on an emulated apt-Jazzy machine, and a Humble-like run-time check.
#
# 1. apt-Jazzy: a "system" Python 3.12 (a hard-linked copy of this machine's python3.12 with site-packages of its
#    own) holding what apt would: numpy 1.26.4 (python3-numpy), an OpenCV built for numpy 1.x (python3-opencv),
#    PyYAML, the ROS 2 Jazzy wheels (requirements-ros-jazzy.txt, standing in for ros-jazzy-* packages, colcon
#    included) and launch / launch_ros / composition_interfaces built from ../shared/ros-extras (ros-jazzy-launch-ros),
#    behind a stand-in /opt/ros/jazzy/setup.bash. Then the lines of the README's quick-start block run as written
#    in a fresh home, with three substitutions: the setup.bash path, the clone URL (this checkout's HEAD), and
#    `rosdep install` (its database cannot be reached here: every key of package.xml is checked to be provided by
#    the emulated system instead). `ros2 launch` (no ros2 CLI here) is replaced by the node, lifecycle and launch
#    tests, run against the built workspace from the clone.
# 2. Humble-like: a "system" Python 3.10 with numpy 1.21.5 and OpenCV as system packages; a venv over it with
#    requirements-robot-humble.txt (ONNX Runtime needs numpy >= 1.21.6: the file pins it, same ABI), then the
#    ROS-free tests (the test tools from requirements-jetson.txt's pins, which suit Python 3.10 / numpy 1.21).
#
# Work folder: $FER_ROBOT_CHECK_DIR (default .robot-check/ in the checkout); rebuilt each run. Registry access only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/env.sh
DISTRO=jazzy source scripts/env.sh
WORK=${FER_ROBOT_CHECK_DIR:-$ROOT/.robot-check}
EXTRAS_SRC=${FER_ROS_EXTRAS_SRC:-$ROOT/../shared/ros-extras}
say() { echo "[robot-check] $*" >&2; }
# The machine's ROS/venv variables must not leak in (as .ci/run does for make test).
unset AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH PYTHONPATH VIRTUAL_ENV ROS_DISTRO ROS_VERSION \
      ROS_PYTHON_VERSION FASTDDS_DEFAULT_PROFILES_FILE FASTRTPS_DEFAULT_PROFILES_FILE LD_LIBRARY_PATH
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(( $$ % 100 + 101 )) PYTHONUNBUFFERED=1
rm -rf "$WORK"
mkdir -p "$WORK"
if [ ! -d "$EXTRAS_SRC/src" ]; then   # a user's clone: nothing stands in for ros-jazzy-launch-ros
  say "no $EXTRAS_SRC: the emulated apt-Jazzy machine needs launch_ros from there; skipped"; exit 0
fi

pin() { grep -hE "^($1)==" "${@:2}" | sed 's/[[:space:]].*//'; }   # pin 'a|b' FILE...: bare name==version lines

system_python() {  # system_python VERSION DIR: DIR/usr is a Python with empty site-packages of its own
  local version=$1 dir=$2 python base
  python=$(find_python "$version") || { say "python$version not found"; exit 1; }
  base=$("$python" -c 'import sys; print(sys.base_prefix)')
  mkdir -p "$dir"
  cp -al "$base" "$dir/usr" 2>/dev/null || cp -a "$base" "$dir/usr"
  # Hard links: delete (never overwrite in place) what pip would write, so the original stays untouched.
  find "$dir/usr/bin" -mindepth 1 ! -name "python$version" ! -name python3 -delete
  rm -rf "$dir/usr/lib/python$version/site-packages"
  mkdir -p "$dir/usr/lib/python$version/site-packages"
  "$dir/usr/bin/python$version" -m ensurepip >/dev/null 2>&1
  ln -sf "python$version" "$dir/usr/bin/python3"
}
sys_pip() {  # sys_pip DIR ARGS...: pip of that system Python (as root, like apt: pip's warnings go to the log)
  "$1/usr/bin/python3" -m pip install --disable-pip-version-check -q --root-user-action=ignore "${@:2}" \
    2>>"$WORK/pip.log" || { tail -n 30 "$WORK/pip.log" >&2; return 1; }
}

# ------------------------------------------------------------------ 1. the emulated apt-Jazzy machine
start=$(date +%s)
SYSROOT=$WORK/apt-jazzy
say "emulated apt-Jazzy: system Python 3.12 with numpy 1.26.4, OpenCV, PyYAML and the Jazzy ROS wheels"
system_python 3.12 "$SYSROOT"
sys_pip "$SYSROOT" numpy==1.26.4 pyyaml==6.0.1 "opencv-python-headless==4.10.0.84"
# + colcon-defaults (part of apt's python3-colcon-common-extensions; reads the defaults file below)
sys_pip "$SYSROOT" -r requirements-ros-jazzy.txt colcon-defaults==0.2.9 -c <(echo numpy==1.26.4)
ROS_PREFIX=$SYSROOT/opt/ros/jazzy
mkdir -p "$ROS_PREFIX"
# ros-jazzy-launch-ros and its dependencies (no wheels exist: built from their public sources)
sys_pip "$SYSROOT" --no-deps --require-hashes -r requirements-ros-extras.txt
sys_pip "$SYSROOT" --no-deps --no-build-isolation "$EXTRAS_SRC/src/launch-jazzy/launch" \
  "$EXTRAS_SRC/src/launch-jazzy/launch_xml" "$EXTRAS_SRC/src/launch-jazzy/launch_yaml" \
  "$EXTRAS_SRC/src/launch_ros-jazzy/launch_ros"
# The wheels' CMake exports name their build machine's include paths; an apt install has no such problem.
# colcon reads this defaults file, so the README's `colcon build` line stays as written.
cat >"$SYSROOT/colcon-defaults.yaml" <<EOF
build: {cmake-args: ["-DCMAKE_PROJECT_INCLUDE=$ROOT/cmake/fix_wheel_includes.cmake", "-DBUILD_TESTING=OFF"]}
EOF
cat >"$ROS_PREFIX/setup.bash" <<EOF
# stand-in for /opt/ros/jazzy/setup.bash on the emulated apt-Jazzy machine
export ROS_DISTRO=jazzy ROS_VERSION=2 ROS_PYTHON_VERSION=3
export PATH=$SYSROOT/usr/bin:\$PATH
export AMENT_PREFIX_PATH=$SYSROOT/usr\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}
export CMAKE_PREFIX_PATH=$SYSROOT/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}
export COLCON_DEFAULTS_FILE=$SYSROOT/colcon-defaults.yaml
# the ROS libraries, as /opt/ros/jazzy/lib is (the wheels keep some beside their Python modules)
export LD_LIBRARY_PATH=$SYSROOT/usr/lib$(printf ':%s' "$SYSROOT"/usr/lib/python3.12/site-packages/ros_*.libs)\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
source $SYSROOT/opt/ros/jazzy-from-source/local_setup.bash   # composition_interfaces
EOF
(
  mkdir -p "$SYSROOT/opt/ros/jazzy-from-source" && touch "$SYSROOT/opt/ros/jazzy-from-source/local_setup.bash"
  # shellcheck disable=SC1091
  source "$ROS_PREFIX/setup.bash"
  colcon --log-base "$WORK/log-extras" build --merge-install --base-paths "$EXTRAS_SRC/src/rcl_interfaces-jazzy/composition_interfaces" \
    --build-base "$WORK/build-extras" --install-base "$SYSROOT/opt/ros/jazzy-from-source" --event-handlers console_direct- \
    --cmake-args "-DPython3_EXECUTABLE=$SYSROOT/usr/bin/python3" "-DCMAKE_PROJECT_INCLUDE=$ROOT/cmake/fix_wheel_includes.cmake" \
    -DBUILD_TESTING=OFF >"$WORK/extras.log" 2>&1 \
    || { tail -n 40 "$WORK/extras.log" >&2; exit 1; }
)
say "emulated machine ready in $(( $(date +%s) - start )) s"

# ------------------------------------------------------------------ the README's quick start, as written
block=$(awk '/<!-- robot quick start/{f=1; next} f && /^```bash/{g=1; next} g && /^```/{exit} g' README.md)
[ -n "$block" ] || { say "no quick-start block in README.md"; exit 1; }
ament_has() {  # ament_has PACKAGE: registered in the ament index of some AMENT_PREFIX_PATH entry
  local prefix IFS=:
  for prefix in $AMENT_PREFIX_PATH; do
    [ ! -e "$prefix/share/ament_index/resource_index/packages/$1" ] || return 0
  done
  return 1
}
rosdep_standin() {  # every package.xml key of the run time is provided by the emulated system
  local key missing=()
  for key in $(python3 - <<'EOF'
import xml.etree.ElementTree as ET
root = ET.parse('src/fer_ros/package.xml').getroot()
print(' '.join(e.text.strip() for tag in ('depend', 'exec_depend', 'buildtool_depend') for e in root.findall(tag)))
EOF
); do
    case "$key" in
      python3-numpy) python3 -c 'import numpy' ;; python3-opencv) python3 -c 'import cv2' ;;
      python3-yaml) python3 -c 'import yaml' ;;
      *) ament_has "$key" ;;
    esac || missing+=("$key")
  done
  [ ${#missing[@]} = 0 ] || { say "rosdep stand-in: the emulated system lacks ${missing[*]}"; return 1; }
  say "rosdep stand-in: every run-time key of package.xml is installed"
}
script=$WORK/quick_start.sh
{
  echo 'set -exo pipefail'   # not -u: a ROS setup.bash reads unset variables
  declare -f say ament_has rosdep_standin
  sed -e "s#^source /opt/ros/jazzy/setup.bash#source $ROS_PREFIX/setup.bash#" \
      -e "s#git clone <this repository's URL> #git clone -q $ROOT #" \
      -e 's#^rosdep install .*#rosdep_standin#' \
      -e 's#^ros2 launch .*#echo "ros2 launch: replaced by the launch tests below"#' <<<"$block"
} >"$script"
say "running the README's quick start ($(grep -c . <<<"$block") lines) in $WORK/home"
start=$(date +%s)
mkdir -p "$WORK/home"
HOME=$WORK/home bash "$script" >"$WORK/quick_start.log" 2>&1 || { tail -n 60 "$WORK/quick_start.log" >&2; exit 1; }
[ -x "$WORK/home/ws/install/fer_ros/lib/fer_ros/fer_node" ] \
  || { tail -n 60 "$WORK/quick_start.log" >&2; say "the quick start did not build fer_node"; exit 1; }
say "quick start: installed and built in $(( $(date +%s) - start )) s"

say "node, lifecycle and launch tests against the built workspace (system numpy $(
  "$SYSROOT/usr/bin/python3" -c 'import numpy; print(numpy.__version__)'))"
(
  set +u   # ROS's setup scripts read unset variables
  export HOME=$WORK/home
  # shellcheck disable=SC1091
  source "$ROS_PREFIX/setup.bash"
  # shellcheck disable=SC1091
  source "$HOME/fer_venv/bin/activate"
  pip install --disable-pip-version-check -q $(pin 'pytest|pytest-timeout|psutil' "$ROOT/requirements.txt")
  cd "$HOME/ws"
  # shellcheck disable=SC1091
  source install/setup.bash
  eval "$(python -m fer_ros.ros.fastdds_profile "$PWD/install/fer_ros/share/fer_ros/config/fastdds_large_images.xml")"
  python - <<'EOF'
import cv2, numpy, onnxruntime
assert numpy.__version__ == '1.26.4' and '/usr/lib/' in numpy.__file__, f'numpy {numpy.__version__} from {numpy.__file__}'
assert '/usr/lib/' in cv2.__file__, f'OpenCV from {cv2.__file__}, not the system'
print(f'[robot-check] the venv runs on the system numpy {numpy.__version__} ({numpy.__file__}), system OpenCV '
      f'{cv2.__version__}, onnxruntime {onnxruntime.__version__} ({onnxruntime.__file__})')
EOF
  head -n 1 install/fer_ros/lib/fer_ros/fer_node | grep -q "$HOME/fer_venv/bin/python" \
    || { say "fer_node's interpreter is not the venv's: $(head -n 1 install/fer_ros/lib/fer_ros/fer_node)"; exit 1; }
  cd src/fer_ros
  CI=true python -m pytest -q -rs -p no:cacheprovider test/test_node.py test/test_lifecycle_node.py test/test_launch.py \
    test/test_launch_config.py test/test_package_xml.py
)

# ------------------------------------------------------------------ 2. Humble-like: Python 3.10, numpy 1.21.5
start=$(date +%s)
SYSROOT=$WORK/humble
say "Humble-like: system Python 3.10 with numpy 1.21.5 and OpenCV; venv with requirements-robot-humble.txt"
system_python 3.10 "$SYSROOT"
sys_pip "$SYSROOT" numpy==1.21.5 pyyaml==6.0.1 "opencv-python-headless==4.11.0.86"   # (apt: PyYAML 5.4.1, no cp310 wheel)
"$SYSROOT/usr/bin/python3" -m venv --system-site-packages "$SYSROOT/venv"
VPIP=("$SYSROOT/venv/bin/python" -m pip install --disable-pip-version-check -q)
"${VPIP[@]}" -r requirements-robot-humble.txt
# the test tools, never replacing the run time's numpy
"${VPIP[@]}" $(pin 'pytest|pytest-timeout|psutil|hypothesis|rosbags|mcap|matplotlib|tqdm' requirements-jetson.txt) \
  -c <(pin numpy requirements-robot-humble.txt)
"$SYSROOT/venv/bin/python" - <<'EOF'
import cv2, numpy, onnxruntime
assert '/usr/lib/' in cv2.__file__, cv2.__file__
assert numpy.__version__.startswith('1.21.'), f'numpy {numpy.__version__} from {numpy.__file__}'
print(f'[robot-check] Humble-like venv: numpy {numpy.__version__}, system OpenCV {cv2.__version__}, '
      f'onnxruntime {onnxruntime.__version__}')
EOF
CI=true PYTHONPATH=$ROOT "$SYSROOT/venv/bin/python" -m pytest -q -rs -p no:cacheprovider -m "not ros and not slow" test
say "Humble-like check passed in $(( $(date +%s) - start )) s"
