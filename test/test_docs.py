"""The docs name only what exists: every backticked fer_ros module, function, class member, repository path,
parameter and config key in README.md and docs/*.md is checked against the source (read with ``ast``, nothing
imported, so it runs without ROS or torch).

What is checked, by the shape of the backticked text:
- ``fer_ros.a.b[.Name[.member]]``: the module file, then the names in it;
- a repository path (``fer_ros/...``, ``test/...``, ``scripts/...``, a root file, ``name.py``): the file or
  folder; ``fer_ros/msg/X`` and ``fer_ros/srv/X`` are interface names (msg/X.msg, srv/X.srv);
- ``Class.member`` / ``Class.method(...)`` of a fer_ros class, ``module.name`` of a fer_ros module,
  ``section.key`` of the training config;
- ``snake_case_function(...)``: a function or method of that name in the package, training or benchmarks;
- ``name: value`` / ``name:=value``: a node or camera parameter, launch argument, commands.yaml key,
  message field or training config key;
- any other ``snake_case`` word: it occurs in the repository's code or configuration.
Spans with spaces or operators (commands, formulas) and words of other projects (listed below) are skipped.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
CODE_DIRS = ('fer_ros', 'training', 'benchmarks', 'scripts', 'launch', 'test')
# Made by `make setup`, `make bench`, a run or a build: not in the repository.
GENERATED = ('models/', 'bench/', 'build', 'install', 'log', 'runs/', '.venv', 'test-overlay', 'eval_sample')
# Names from other projects the docs mention: the libfacedetection C library and its yuface binding,
# Keras, OpenCV, ROS tools and the datasets' own file names.
FOREIGN = {'facedetect_cnn', 'param_pConvInfo', 'c_detect', 'yuface_full', 'face_classification', 'ceil_mode',
           'state_dict', 'use_sim_time', 'additional_env', 'cv_bridge', 'emotion_model', 'depth_multiplier'}
FILE_NAME = r'[\w.-]+\.(py|sh|txt|toml|xml|yaml|cmake|md|csv|json|log|png|pt|onnx)'
IDENT = r'[A-Za-z_]\w*'


def spans() -> list[tuple[str, str]]:
    """(file name, backticked text) outside fenced code blocks, each once per file."""
    found = []
    for doc in DOCS:
        text = re.sub(r'```.*?```', '', doc.read_text(encoding='utf-8'), flags=re.S)
        for span in dict.fromkeys(re.findall(r'`([^`\n]+)`', text)):
            found.append((doc.name, span))
    return found


# ---------------------------------------------------------------- what the repository defines

class Names:
    """The names one module defines: top level (functions, classes, assignments, imports) and per class."""

    def __init__(self, path: Path) -> None:
        tree = ast.parse(path.read_text(encoding='utf-8'))
        self.top: set[str] = set()
        self.classes: dict[str, set[str]] = {}
        for node in tree.body:
            self.top |= _bound(node)
            if isinstance(node, ast.ClassDef):
                members = set()
                for item in ast.walk(node):
                    members |= _bound(item) if item is not node else set()
                    if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id == 'self':
                        members.add(item.attr)
                self.classes[node.name] = members


def _bound(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split('.')[0] for a in node.names}
    return set()


@lru_cache(maxsize=None)
def names(path: Path) -> Names:
    return Names(path)


def python_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((REPO / d).rglob('*.py'))]


@lru_cache(maxsize=1)
def classes() -> dict[str, set[str]]:
    """Every class of the package (and training) -> its members (a name defined twice: the union)."""
    found: dict[str, set[str]] = {}
    for path in python_files('fer_ros', 'training'):
        for name, members in names(path).classes.items():
            found.setdefault(name, set()).update(members)
    return found


@lru_cache(maxsize=1)
def functions() -> set[str]:
    return {n.name for path in python_files('fer_ros', 'training', 'benchmarks', 'scripts')
            for n in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


@lru_cache(maxsize=1)
def words() -> set[str]:
    """Every identifier-like word of the code, tests, configuration, messages and build files."""
    files = [p for d in CODE_DIRS + ('config', 'msg', 'srv', 'assets', 'cmake', 'rosdep', '.ci')
             for p in (REPO / d).rglob('*') if p.is_file() and p.suffix in ('.py', '.yaml', '.msg', '.srv', '.sh',
                                                                             '.csv', '.md', '.cmake', '')]
    files += [REPO / n for n in ('CMakeLists.txt', 'Makefile', 'package.xml', 'pyproject.toml')]
    files += sorted(REPO.glob('requirements*.txt'))
    found: set[str] = set()
    for path in files:
        if path.parent.name != 'docs' and path.name != 'test_docs.py':
            found.update(re.findall(r'\w+', path.read_text(encoding='utf-8', errors='replace')))
    return found


@lru_cache(maxsize=1)
def setting_keys() -> set[str]:
    """Node and camera parameters, launch arguments, commands.yaml keys, message and service fields."""
    keys: set[str] = set()
    keys |= set(re.findall(r"ParamDef(?:\.of)?\('(\w+)'", (REPO / 'fer_ros' / 'settings' / 'params.py').read_text()))
    keys |= set(re.findall(r"\('(\w+)', ", (REPO / 'fer_ros' / 'ros' / 'camera.py').read_text()))
    keys |= set(re.findall(r"'(\w+)'", (REPO / 'launch' / 'fer.launch.py').read_text()))   # its arguments
    keys |= set(re.findall(r'^\s*(\w+):', (REPO / 'config' / 'commands.yaml').read_text(), flags=re.M))
    keys |= set(re.findall(r"'(\w+)'", (REPO / 'fer_ros' / 'hri' / 'command_config.py').read_text()))  # its schema
    for interface in [*(REPO / 'msg').glob('*.msg'), *(REPO / 'srv').glob('*.srv')]:
        keys |= set(re.findall(r'^\s*[\w/\[\]<=]+\s+(\w+)', interface.read_text(), flags=re.M))
    return keys


@lru_cache(maxsize=1)
def training_keys() -> set[str]:
    """The training config's dotted keys ('optim.lr', 'augment.erasing.p', ...) from training/config.py."""
    tree = names(REPO / 'training' / 'config.py')
    sections = {'model': 'ModelConfig', 'data': 'DataConfig', 'split': 'SplitConfig', 'optim': 'OptimConfig',
                'train': 'TrainConfig', 'augment.erasing': 'ErasingConfig', 'augment.expansion': 'ExpansionConfig'}
    keys = {'augment'} | set(sections)
    for section, cls in sections.items():
        keys |= {f'{section}.{field}' for field in tree.classes[cls]}
    return keys


def module_file(dotted: str) -> Path | None:
    path = REPO.joinpath(*dotted.split('.'))
    for candidate in (path.with_suffix('.py'), path / '__init__.py'):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------- the checks, by shape

def problem(span: str) -> str:
    """What is wrong with one backticked span ('' when it names something that exists or is not checked)."""
    text = span.strip()
    if re.fullmatch(rf'fer_ros(\.{IDENT})+(\(.*\))?', text):
        return _dotted(re.sub(r'\(.*\)$', '', text))
    setting = re.fullmatch(rf'({IDENT}(?:\.{IDENT})*)\s*(?::=|:)\s*\S.*', text)
    if setting and not re.fullmatch(FILE_NAME, setting.group(1)):
        key = setting.group(1)
        known = key in setting_keys() or key in training_keys()
        return '' if known else f'{key!r} is no parameter, launch argument, commands.yaml key, message field or ' \
                                'training config key'
    if ' ' not in text and '/' in text or re.fullmatch(r'[\w.-]+\.py', text):
        return _path(text)
    call = re.fullmatch(rf'({IDENT}(?:\.{IDENT})*)\(.*\)', text)
    if call:
        return _member(call.group(1), callable_=True)
    if re.fullmatch(rf'{IDENT}(\.{IDENT})+', text) and not re.fullmatch(FILE_NAME, text):
        return _member(text, callable_=False)
    templated = re.fullmatch(r'([a-z]+_(?:[a-z]+_)*?)[a-z]*\d\w*', text)   # made per face or window: 'x_f3'
    if templated and text not in words():
        return '' if templated.group(1) in words() else f'{text!r}: no {templated.group(1)!r} in the code'
    if re.fullmatch(r'[a-z][a-z0-9]*(_[a-z0-9]+)+', text) and text not in FOREIGN and text not in words():
        return f'{text!r} occurs nowhere in the code, tests or configuration'
    return ''


def _dotted(dotted: str) -> str:
    parts = dotted.split('.')
    for cut in range(len(parts), 0, -1):
        path = module_file('.'.join(parts[:cut]))
        if path is None:
            continue
        rest = parts[cut:]
        if not rest:
            return ''
        defined = names(path)
        if rest[0] not in defined.top:
            return f'{".".join(parts[:cut])} defines no {rest[0]!r}'
        if len(rest) > 1 and rest[0] in defined.classes and rest[1] not in defined.classes[rest[0]]:
            return f'{".".join(parts[:cut + 1])} has no member {rest[1]!r}'
        return ''
    return f'no module {dotted}'


def _path(text: str) -> str:
    path = re.sub(r'[#:].*$', '', text).rstrip('/')
    if path.startswith(('/', '~', '<', '.ci/run')) or not path or '…' in path or '...' in path or '<' in path:
        return ''
    interface = (re.fullmatch(r'fer_ros/(?:(msg|srv)/)?([A-Z]\w+)', path)     # fer_ros/msg/X, fer_ros/X
                 or re.fullmatch(r'(msg|srv)/([A-Z]\w+)', path))                 # srv/X
    if interface:
        kind, name = interface.groups()
        kinds = [kind] if kind else ['msg', 'srv']
        return '' if any((REPO / k / f'{name}.{k}').is_file() for k in kinds) else f'no interface {path}'
    if path.startswith(GENERATED) or not re.fullmatch(r'[\w./*-]+', path):
        return ''
    top = path.split('/')[0]
    if '/' not in path:                       # a module or test file named alone: somewhere in the code
        if not path.endswith('.py') or any(p.name == path for d in CODE_DIRS for p in (REPO / d).rglob(path)):
            return ''
        return f'no file named {path} in the repository'
    if not (REPO / top).exists():             # not a repository path (a dataset layout, a topic...)
        return ''
    return '' if list(REPO.glob(path)) else f'no {path} in the repository'


def _member(dotted: str, callable_: bool) -> str:
    head, *rest = dotted.split('.')
    if not rest:
        if not callable_ or '_' not in head or head in FOREIGN:
            return ''                          # builtins, other libraries' calls, one-word names
        return '' if head in functions() else f'no function {head}() in the package, training or benchmarks'
    if rest[0] in FOREIGN:
        return ''
    if head in classes():
        return '' if rest[0] in classes()[head] else f'class {head} has no member {rest[0]!r}'
    module = next((p for p in python_files('fer_ros') if p.stem == head and p.name != '__init__.py'), None)
    if module is not None and not callable_:     # a call on `node.` is a variable's method, not the module's
        return '' if rest[0] in names(module).top else f'{module.relative_to(REPO)} defines no {rest[0]!r}'
    if head in ('model', 'data', 'split', 'augment', 'optim', 'train') and not callable_:
        return '' if dotted in training_keys() else f'the training config has no key {dotted!r}'
    return ''                                  # another library's name (cv2.warpAffine, launch.LaunchService)


@pytest.mark.parametrize('doc, span', spans(), ids=lambda v: str(v)[:60])
def test_backticked_name_exists(doc, span):
    assert not problem(span), f'{doc}: `{span}`: {problem(span)}'


def test_the_check_finds_what_does_not_exist():
    """The check itself: names that are not in the repository are reported."""
    for span in ('fer_ros.pipeline.Pipeline.analyze_all', 'fer_ros.no_such_module', 'Pipeline.no_such_method(bgr)',
                 'valence_arousal_of(probabilities, labels)', 'test/test_no_such_file.py', 'fer_ros/msg/NoSuchMsg',
                 'no_such_parameter: true', 'optim.no_such_key', 'no_such_counter_name'):
        assert problem(span), span
    for span in ('fer_ros.pipeline.Pipeline', 'Pipeline.process(bgr, stamp)', 'test/test_docs.py',
                 'fer_ros/msg/HriCommand', 'fer_ros/FaceExpression', 'hri_output: true', 'optim.lr', 'frames_received',
                 'cv2.warpAffine'):
        assert not problem(span), (span, problem(span))
