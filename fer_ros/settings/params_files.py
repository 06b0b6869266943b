"""Parameters files and overrides given at start: checked, so a parameter is never silently not applied.

ROS applies a params file's section only when its key matches the node's fully qualified name
(``/**``, ``/ns/fer_node``, ``fer_node`` = ``/fer_node`` only); everything else, and any key the node
does not declare, is ignored without a word. Here:

- a missing or non-YAML file, or one that is not a mapping of node sections, is a ParameterError
  naming the file (checked before rcl parses it, which would fail with a traceback);
- a file none of whose sections applies to this node, while one names it under another namespace
  (``fer_node:`` for ``/head/fer_node``), is a ParameterError that says how to key it;
- an override (file or ``-p``) of a parameter the node does not have is a ParameterError naming it,
  with the closest known name.

No rclpy import at module level (the file checks run before rclpy.init).
"""
from __future__ import annotations

import re
from pathlib import Path

from fer_ros.settings import params
from fer_ros.settings.params import ParameterError


def params_files(argv: list[str]) -> list[str]:
    """The ``--params-file PATH`` arguments inside the ``--ros-args`` sections of ``argv``."""
    files, in_ros, i = [], False, 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--ros-args':
            in_ros = True
        elif arg == '--':
            in_ros = False
        elif in_ros and arg == '--params-file' and i + 1 < len(argv):
            files.append(argv[i + 1])
            i += 1
        i += 1
    return files


def load_params_file(path: str) -> dict:
    """The parsed file: {node key: {'ros__parameters': {...}}}. Raises ParameterError naming it."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ParameterError(f'params file {path}: no such file')
    try:
        data = yaml.safe_load(file.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ParameterError(f'params file {path}: not valid YAML: {exc}') from None
    except OSError as exc:
        raise ParameterError(f'params file {path}: cannot read: {exc.strerror or exc}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ParameterError(f'params file {path}: expected node sections like "/**: {{ros__parameters: '
                             f'{{...}}}}", got {type(data).__name__}')
    for key, section in data.items():
        if 'ros__parameters' not in section or not isinstance(section['ros__parameters'], dict):
            raise ParameterError(f'params file {path}: section {key!r} has no "ros__parameters:" mapping')
    return data


def key_matches(key: str, fully_qualified_name: str) -> bool:
    """Does a params-file section key apply to the node ``/ns/name``? (rcl's rules: ``*`` one name
    token, ``**`` any number of them; a key without a leading ``/`` is absolute.)"""
    key = key if key.startswith('/') else '/' + key
    pattern = ''
    for token in re.split(r'(/\*\*|\*)', key):
        if token == '/**':
            pattern += r'(/[^/]+)*'
        elif token == '*':
            pattern += r'[^/]+'
        else:
            pattern += re.escape(token)
    return re.fullmatch(pattern, fully_qualified_name) is not None


def _flatten(values: dict, prefix: str = '') -> list[str]:
    names = []
    for key, value in values.items():
        if isinstance(value, dict):
            names += _flatten(value, f'{prefix}{key}.')
        else:
            names.append(f'{prefix}{key}')
    return names


def check_params_files(files: list[str], fully_qualified_name: str) -> None:
    """Check every params file against the node ``fully_qualified_name``; see the module docstring.

    Raises:
        ParameterError: the first problem, naming the file and section or key.
    """
    node_name = fully_qualified_name.rsplit('/', 1)[-1]
    for path in files:
        data = load_params_file(path)
        applying = [key for key in data if key_matches(str(key), fully_qualified_name)]
        if not applying:
            meant = [str(key) for key in data if str(key).rstrip('/').rsplit('/', 1)[-1] == node_name]
            if meant:
                raise ParameterError(
                    f'params file {path}: section {meant[0]!r} does not apply to this node, '
                    f'{fully_qualified_name} (ROS would ignore it without a word); key it "/**:" (any node) or '
                    f'"{fully_qualified_name}:"')
            continue       # a file for other nodes (a robot-wide file): nothing of it is ours
        for key in applying:
            for name in _flatten(data[key]['ros__parameters']):
                if name not in params.PARAMETERS_BY_NAME and not params.is_ros_parameter(name):
                    raise ParameterError(params.unknown_parameter_message(name, f'params file {path}, section {key!r}'))


def check_overrides(node) -> None:
    """Every override the node received (params files and -p) must name one of its parameters.

    rclpy keeps the overrides that apply to this node in ``Node._parameter_overrides`` (a stable
    attribute since Dashing; there is no public accessor).

    Raises:
        ParameterError: naming the unknown parameter.
    """
    for name in getattr(node, '_parameter_overrides', {}):
        if name not in params.PARAMETERS_BY_NAME and not params.is_ros_parameter(name):
            raise ParameterError(params.unknown_parameter_message(name, 'given at start'))
