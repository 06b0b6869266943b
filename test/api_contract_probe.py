"""API contract probe: runs in a throwaway environment where the REAL TensorRT or cuda-python module imports
(the TensorRT bindings over null stand-in libraries, the lean runtime for real, cuda-bindings for real), and
checks fer_ros's TensorRT / CUDA code against it. Started by test/test_api_contract.py; prints one JSON object.

    python test/api_contract_probe.py MODULE ROOT FILE...

MODULE: the module to import (``tensorrt``, ``tensorrt_lean_bindings``, ``cuda.bindings.runtime``).
ROOT: the name the project's code gives that module (``trt``, ``cudart``).

What is checked, from the project's source (ast) against the imported module, without a table to keep in step:
- every ``ROOT.A.B...`` chain exists (classes, enums, enum members, functions);
- every call of a module function or class (``ROOT.f(...)``, ``ROOT.Builder(logger)``) fits one of the real
  signatures (pybind11 docstring or ``inspect.signature``: positional count, keyword names);
- methods and attributes used on objects whose class is known (made by ``ROOT.X(...)``, or returned by a call
  whose real signature names a class of the module: ``builder.create_network()`` gives an INetworkDefinition),
  through local names and ``self.`` attributes, with the same call-form check;
- subclasses of module classes (the INT8 calibrator): the base exists and the overridden methods are its own.
Each use is reported with its file:line; the test decides which may be missing in which version.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys

_SIG = re.compile(r'^(?:\d+\.\s*)?(\w+)\((.*)\)\s*(?:->\s*(.+))?$')


def _split_top(text: str) -> list[str]:
    """Split ``text`` on commas outside brackets."""
    parts, depth, cur = [], 0, ''
    for ch in text:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def signatures(obj, name: str) -> list[tuple[list[tuple[str, bool]], str]] | None:
    """The real call forms of ``obj``: [([(param, has_default), ...], return type text)], None = unknown."""
    doc = getattr(obj, '__doc__', None) or ''
    found = []
    for line in doc.splitlines():
        m = _SIG.match(line.strip())
        if not m or m.group(1) != name or '*args' in m.group(2):
            continue
        params = []
        for part in _split_top(m.group(2)):
            pname = part.split(':')[0].split('=')[0].strip()
            if pname in ('self', '') or pname.startswith('*'):
                continue
            params.append((pname, '=' in part))
        found.append((params, (m.group(3) or '').strip()))
    if found:
        return found
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [(p.name, p.default is not inspect.Parameter.empty) for p in sig.parameters.values()
              if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
        return None
    return [(params, '')]


def call_fits(forms, nargs: int, keywords: list[str]) -> bool:
    for params, _ in forms:
        names = [p for p, _ in params]
        if nargs > len(params) or any(k not in names[nargs:] for k in keywords):
            continue
        required = [p for p, has_default in params if not has_default]
        if all(i < nargs or p in keywords for i, p in enumerate(names) if p in required):
            return True
    return False


class Probe:
    def __init__(self, module, root: str) -> None:
        self.mod, self.root = module, root
        self.uses: dict[str, dict] = {}
        self.returns: dict[str, tuple] = {}     # project function name -> the type it returns, when known

    def record(self, use: str, where: str, ok: bool, why: str = '') -> None:
        entry = self.uses.setdefault(use, {'use': use, 'where': [], 'ok': True, 'why': ''})
        if where not in entry['where']:
            entry['where'].append(where)
        if not ok:
            entry['ok'], entry['why'] = False, why

    def module_class(self, type_text: str):
        """A class of the module named by a signature's return type (``pkg.tensorrt.ICudaEngine``)."""
        name = type_text.split('.')[-1].strip()
        obj = getattr(self.mod, name, None)
        return name if inspect.isclass(obj) else None

    def check_call(self, label: str, target, fname: str, node: ast.Call, where: str):
        forms = signatures(target, fname)
        if forms is None:
            self.record(label, where, True)
            return None
        nargs = sum(1 for a in node.args if not isinstance(a, ast.Starred))
        keywords = [k.arg for k in node.keywords if k.arg]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            self.record(label, where, True)
        elif call_fits(forms, nargs, keywords):
            self.record(label, where, True)
        else:
            shown = ' | '.join(f"({', '.join(p for p, _ in params)})" for params, _ in forms)
            self.record(label, where, False, f'called with {nargs} positional {keywords or ""}; real forms {shown}')
        for _, ret in forms:
            cls = self.module_class(ret) if ret else None
            if cls:
                return ('instance', cls)
        return None

    # --- type inference over the source -----------------------------------------------------------------
    def typeof(self, node, env: dict, where: str):
        """('module', obj) | ('class', name) | ('instance', name) | ('value', obj) | None, recording uses."""
        if isinstance(node, ast.Name):
            if node.id == self.root:
                return ('module', self.mod)
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == 'self':
                return env.get('self.' + node.attr)
            base = self.typeof(node.value, env, where)
            if base is None:
                return None
            kind, obj = base
            if kind == 'module':
                target = getattr(obj, node.attr, None)
                label = node.attr if obj is self.mod else None
                if label is None:
                    return None
                self.record(label, where, target is not None, f'{self.mod.__name__} has no {node.attr}')
                if target is None:
                    return None
                return ('class', node.attr) if inspect.isclass(target) else ('value', (node.attr, target))
            if kind == 'class':
                cls = getattr(self.mod, obj)
                target = getattr(cls, node.attr, None)
                self.record(f'{obj}.{node.attr}', where, target is not None, f'{obj} has no {node.attr}')
                return ('value', (f'{obj}.{node.attr}', target)) if target is not None else None
            if kind == 'instance':
                cls = getattr(self.mod, obj)
                target = getattr(cls, node.attr, None)
                if not callable(target) or isinstance(target, property):
                    self.record(f'{obj}.{node.attr}', where, target is not None, f'{obj} has no {node.attr}')
                return ('method', (obj, node.attr, target))
            return None
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in self.returns:   # a project helper
                for arg in node.args + [k.value for k in node.keywords]:
                    self.typeof(arg, env, where)
                return self.returns[node.func.id]
            func = self.typeof(node.func, env, where)
            for arg in node.args + [k.value for k in node.keywords]:
                self.typeof(arg, env, where)
            if func is None:
                return None
            kind, obj = func
            if kind == 'class':
                cls = getattr(self.mod, obj)
                self.check_call(f'{obj}(...)', cls.__init__, '__init__', node, where)
                return ('instance', obj)
            if kind == 'value' and callable(obj[1]):
                label, target = obj
                if '.' in label and node.args:   # Class.method(self, ...): an unbound call passes self
                    node = ast.Call(func=node.func, args=node.args[1:], keywords=node.keywords)
                self.check_call(f'{label}(...)', target, label.split('.')[-1], node, where)
                return None
            if kind == 'method':
                cls_name, attr, target = obj
                label = f'{cls_name}.{attr}'
                if target is None:
                    self.record(label, where, False, f'{cls_name} has no {attr}')
                    return None
                return self.check_call(label, target, attr, node, where)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr, ast.comprehension)):
                self.typeof(child, env, where)
        return None

    def walk_function(self, fn, env: dict, fname: str, self_attrs: dict) -> None:
        env = dict(env)
        for node in _statements(fn):
            where = f'{fname}:{node.lineno}'
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                pairs = [(t, node.value) for t in targets]
                if len(targets) == 1 and isinstance(targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple) \
                        and len(targets[0].elts) == len(node.value.elts):   # a, b = x, y
                    pairs = list(zip(targets[0].elts, node.value.elts))
                for t, expr in pairs:
                    value = self.typeof(expr, env, where)
                    if isinstance(t, ast.Attribute) and not (isinstance(t.value, ast.Name) and t.value.id == 'self'):
                        self.typeof(t, env, where)       # config.int8_calibrator = ...: the attribute must exist
                    if value is None:
                        continue
                    if isinstance(t, ast.Name):
                        env[t.id] = value
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == 'self':
                        self_attrs['self.' + t.attr] = value
                        env['self.' + t.attr] = value
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.expr):
                        self.typeof(child, env, where)
            if isinstance(node, ast.With):
                for item in node.items:
                    self.typeof(item.context_expr, env, where)
            if isinstance(node, ast.Return) and node.value is not None:
                value = self.typeof(node.value, env, where)
                if value is not None and value[0] in ('instance', 'module'):
                    self.returns[fn.name] = value

    def run_files(self, paths: list[str]) -> None:
        for _ in range(2):                # the first pass learns what the project's helpers return
            for path in paths:
                self.run_file(path)

    def run_file(self, path: str) -> None:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        fname = path.rsplit('/', 1)[-1]
        env = {}
        for node in ast.walk(tree):       # module aliases: `from cuda.bindings import runtime as cudart`
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if (alias.asname or alias.name) == self.root:
                        env[self.root] = ('module', self.mod)
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            self.check_subclass(cls, fname)
            self_attrs: dict = {}
            methods = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            for _ in range(2):            # attributes set in one method are used in the others
                for m in methods:
                    self.walk_function(m, {**env, **self_attrs}, fname, self_attrs)
        for fn in [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            self.walk_function(fn, env, fname, {})

    def check_subclass(self, cls: ast.ClassDef, fname: str) -> None:
        for base in cls.bases:
            if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == self.root:
                real = getattr(self.mod, base.attr, None)
                self.record(base.attr, f'{fname}:{cls.lineno}', real is not None, f'no {base.attr}')
                if real is None:
                    continue
                for m in cls.body:
                    if isinstance(m, ast.FunctionDef) and not m.name.startswith('_') and m.name != 'release':
                        self.record(f'{base.attr}.{m.name}', f'{fname}:{m.lineno} (override)',
                                    hasattr(real, m.name), f'{base.attr} has no {m.name} to override')


def _statements(fn):
    """Statements of ``fn`` in source order, nested blocks included, nested functions too (closures)."""
    out = []

    def visit(body):
        for stmt in body:
            out.append(stmt)
            for field in ('body', 'orelse', 'finalbody', 'handlers'):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list):
                    visit(inner)
    visit(fn.body)
    return out


def main(argv: list[str]) -> int:
    module_name, root, files = argv[0], argv[1], argv[2:]
    module = importlib.import_module(module_name)
    probe = Probe(module, root)
    probe.run_files(files)
    version = getattr(module, '__version__', None)
    if version is None and module_name.startswith('cuda'):
        version = importlib.import_module('cuda.bindings').__version__ if 'bindings' in module_name else '?'
    print(json.dumps({'module': module_name, 'version': str(version), 'uses': sorted(probe.uses.values(),
                                                                                      key=lambda u: u['use'])}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
