"""The package's layering: imports point one way, ROS stays where it belongs, no file grows too big.

Reads the source with ``ast`` (nothing is imported), so it runs anywhere in milliseconds.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'fer_ros'
# what each part may import from fer_ros (besides itself); order = the layering in fer_ros/__init__.py
ALLOWED = {
    'core': set(),
    'models': {'core'},
    'backends': {'core', 'models'},
    'sample_frames': {'core'},
    'ros': {'core', 'backends', 'sample_frames'},
    'evaluation': {'core', 'backends', 'ros'},
    'tools': {'core', 'models', 'backends', 'ros', 'evaluation', 'sample_frames'},
    'examples': {'ros'},
}
ROS_MODULES = ('fer_ros/ros/', 'fer_ros/evaluation/live.py', 'fer_ros/tools/demo.py', 'fer_ros/examples/')
MAX_LINES = 450
GENERATED = ('msg', 'srv', 'action')    # rosidl-generated interface modules (ROS code)


def modules():
    return sorted(p for p in PACKAGE.rglob('*.py') if p.name != '__init__.py' or p.parent != PACKAGE)


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def runtime_imports(path: Path) -> list[str]:
    """Absolute module names imported by ``path``, leaving out ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.append('fer_ros.' + part_of(path))     # relative imports stay inside the part
    return names


@pytest.mark.parametrize('path', modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_one_way(path):
    part = part_of(path)
    assert part in ALLOWED, f'{path}: new part {part!r}: add it to ALLOWED (and to fer_ros/__init__.py)'
    wrong = []
    for name in runtime_imports(path):
        top = name.split('.')
        if top[0] in ('training', 'benchmarks', 'test'):
            wrong.append(name)
        elif top[0] == 'fer_ros' and len(top) > 1 and top[1] not in (*GENERATED, part) and top[1] not in ALLOWED[part]:
            wrong.append(name)
        elif top[0] in ('rclpy', 'launch', 'launch_ros') or (top[0] == 'fer_ros' and len(top) > 1 and top[1] in GENERATED):
            if not str(path.relative_to(PACKAGE.parent)).startswith(ROS_MODULES):
                wrong.append(name)
    assert not wrong, f'{path} imports {wrong}; {part} may import only {sorted(ALLOWED[part])}'


def test_no_module_is_too_long():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f'split these modules (over {MAX_LINES} lines): {long}'
