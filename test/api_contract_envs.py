"""Throwaway environments holding the REAL TensorRT and cuda-python Python modules, for the API contract checks
(test/test_api_contract.py). Nothing here is installed into the project's venv.

TensorRT's libraries cannot be installed on a machine without NVIDIA's index, but its Python bindings wheels
(``tensorrt-cu12-bindings`` / ``-cu13-bindings``, ~1.3 MB) are on PyPI; they import only a handful of C
symbols from libnvinfer / libnvonnxparser / libnvinfer_plugin. ``tensorrt_bindings_env`` installs such a
wheel with pip into a folder, reads the symbols it imports from its ELF file (pyelftools), compiles a null
stand-in library that defines them (``cc -shared``; every function returns 0) under each soname it needs,
and adds the ``tensorrt/`` package of the ``tensorrt-cuXX`` sdist (it re-exports ``tensorrt_bindings``), so
``import tensorrt`` loads the real module: every class, method, enum and signature can be checked, nothing
can be built (a Builder or Runtime raises, as on a machine where libnvinfer fails).
``lean_runtime_env`` installs the lean runtime (``tensorrt-lean-cuXX-libs`` ~44 MB, real libraries that
load on a CPU) and ``cuda_env`` cuda-python / cuda-bindings (real; their calls return CUDA errors here).

Everything is cached under ``<venv>/api-contract/`` (wheels and built folders), so only the first run
downloads (~90 MB from PyPI, seconds on a fast mirror); `make clean` or a fresh CI venv starts over.
A wheel that cannot be fetched (no registry) makes the test skip with pip's reason.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass

import pytest

ROOT = os.path.join(sys.prefix, 'api-contract')
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'api_contract_probe.py')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Env:
    """A prepared environment: prepend ``site`` to PYTHONPATH and ``libs`` to LD_LIBRARY_PATH."""

    name: str
    site: str
    libs: str = ''

    def environ(self) -> dict:
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join([self.site, REPO] + [p for p in [env.get('PYTHONPATH')] if p])
        if self.libs:
            env['LD_LIBRARY_PATH'] = os.pathsep.join([self.libs] + [p for p in [env.get('LD_LIBRARY_PATH')] if p])
        return env

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """``python ARGS`` in this environment (the venv's interpreter, the project on the path)."""
        return subprocess.run([sys.executable, *args], env=self.environ(), capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)

    def probe(self, module: str, root: str, files: list[str]) -> dict:
        """test/api_contract_probe.py's report: {'version', 'uses': [{'use', 'where', 'ok', 'why'}]}."""
        done = self.run(PROBE, module, root, *files)
        if done.returncode != 0:
            raise AssertionError(f'{self.name}: the probe failed:\n{done.stderr[-3000:]}')
        return json.loads(done.stdout.strip().splitlines()[-1])


def _pip(*args: str) -> None:
    """pip in the test's interpreter; a failure to fetch skips with pip's own last words."""
    done = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q', *args],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip() and 'is ignored' not in line]
        pytest.skip(f'cannot fetch {args[-1]} from the package index: {(lines or ["pip failed"])[-1][:300]}')


def _download(spec: str, binary: bool = True) -> str:
    """The wheel (or, binary=False, the sdist) of ``spec`` in the cache, downloaded once."""
    name, version = spec.split('==')
    folder = os.path.join(ROOT, 'downloads')
    prefix = f"{name.replace('-', '_')}-{version}".lower()
    suffix = '.whl' if binary else '.tar.gz'

    def cached() -> list[str]:
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return [os.path.join(folder, n) for n in names
                if n.replace('-', '_').lower().startswith(prefix.replace('-', '_')) and n.endswith(suffix)]
    if not cached():
        os.makedirs(folder, exist_ok=True)
        _pip('download', '--no-deps', '-d', folder,
             *(['--only-binary=:all:'] if binary else ['--no-binary=:all:']), spec)
    if not cached():
        pytest.skip(f'pip downloaded no {prefix}*{suffix} for Python {sys.version_info[0]}.{sys.version_info[1]}')
    return cached()[0]


def _install(name: str, specs: list[str]) -> str:
    """``pip install --no-deps --target`` of the wheels of ``specs`` into <cache>/<name>/site (once)."""
    site = os.path.join(ROOT, name, 'site')
    stamp = os.path.join(ROOT, name, 'installed')
    if not os.path.isfile(stamp) or open(stamp).read() != ' '.join(specs):
        shutil.rmtree(site, ignore_errors=True)
        wheels = [_download(spec) for spec in specs]
        _pip('install', '--no-deps', '--no-index', '--target', site, *wheels)
        with open(stamp, 'w') as f:
            f.write(' '.join(specs))
    return site


def imported_symbols(shared_object: str) -> tuple[list[str], list[str]]:
    """(sonames of NVIDIA libraries ``shared_object`` needs, undefined function symbols none of the system's
    C/C++ runtime libraries define): what a null stand-in must provide for it to load."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    system = [ctypes.CDLL(None)] + [ctypes.CDLL(ctypes.util.find_library(n) or f'lib{n}.so')
                                    for n in ('stdc++', 'gcc_s', 'm', 'dl', 'pthread')]
    with open(shared_object, 'rb') as f:
        elf = ELFFile(f)
        needed = [tag.needed for section in elf.iter_sections() if isinstance(section, DynamicSection)
                  for tag in section.iter_tags() if tag.entry.d_tag == 'DT_NEEDED' and tag.needed.startswith('libnv')]
        symbols = sorted({s.name for s in elf.get_section_by_name('.dynsym').iter_symbols()
                          if s['st_shndx'] == 'SHN_UNDEF' and s.name and s['st_info']['bind'] == 'STB_GLOBAL'
                          and not any(hasattr(lib, s.name) for lib in system)})
    return needed, symbols


def _null_libraries(shared_object: str, folder: str) -> None:
    """A C file defining every symbol ``shared_object`` imports as a function returning 0, compiled with cc
    and copied under each NVIDIA soname it needs."""
    needed, symbols = imported_symbols(shared_object)
    if not needed or not symbols:
        raise AssertionError(f'{shared_object}: expected NVIDIA libraries and their symbols, got {needed} {symbols}')
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, 'null_nvinfer.c')
    with open(source, 'w') as f:
        f.write('/* Null stand-ins for the entry points the TensorRT bindings import (API checks only). */\n')
        f.writelines(f'void *{name}(void) {{ return 0; }}\n' for name in symbols)
    compiler = shutil.which('cc') or shutil.which('gcc')
    if compiler is None:
        raise AssertionError('no C compiler (cc) to build the null TensorRT libraries with')
    first = os.path.join(folder, needed[0])
    subprocess.run([compiler, '-shared', '-fPIC', '-o', first, source], check=True, capture_output=True)
    for soname in needed[1:]:
        shutil.copyfile(first, os.path.join(folder, soname))


def tensorrt_bindings_env(version: str, cuda_major: int) -> Env:
    """The real ``tensorrt`` module ``version`` (bindings wheel + the sdist's re-exporting package) over null
    stand-in libraries."""
    name = f'tensorrt-{version}'
    site = _install(name, [f'tensorrt-cu{cuda_major}-bindings=={version}'])
    package = os.path.join(site, 'tensorrt')
    if not os.path.isdir(package):
        sdist = _download(f'tensorrt-cu{cuda_major}=={version}', binary=False)
        with tarfile.open(sdist) as tar:
            prefix = tar.getnames()[0].split('/')[0] + '/tensorrt/'
            members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()]
            for member in members:
                member.name = member.name[len(prefix) - len('tensorrt/'):]
            tar.extractall(site, members=members, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    libs = os.path.join(ROOT, name, 'null-libs')
    if not os.path.isdir(libs):
        _null_libraries(glob.glob(os.path.join(site, 'tensorrt_bindings', 'tensorrt*.so'))[0], libs)
    return Env(name, site, libs)


def lean_runtime_env(version: str, cuda_major: int) -> Env:
    """The real lean runtime ``tensorrt_lean_bindings`` with its real library (imports and runs on a CPU)."""
    specs = [f'tensorrt-lean-cu{cuda_major}-libs=={version}', f'tensorrt-lean-cu{cuda_major}-bindings=={version}']
    return Env(f'tensorrt-lean-{version}', _install(f'tensorrt-lean-{version}', specs))


def cuda_env(specs: list[str]) -> Env:
    """cuda-python / cuda-bindings (``specs``, pins with no dependency resolution) for real."""
    name = specs[0].replace('==', '-')
    return Env(name, _install(name, specs))
