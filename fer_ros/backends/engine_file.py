"""fer_ros engine files (a TensorRT plan and the facts it cannot carry, in ONE file) and the engine cache folder.

A serialized TensorRT engine holds no model metadata, yet the runtime needs the ONNX file's (labels, input
size, normalisation: the ``fer_ros`` / ``fer_ros_detector`` metadata) and the cache key the engine was
built under. Kept in a sidecar they can be separated, renamed or copied apart; so fer-build-engine writes

    b'FERTRT01' | uint32 little-endian header length | header (UTF-8 JSON) | plan (TensorRT's bytes)

(the layout ultralytics uses for its .engine files: metadata first, the plan as TensorRT wrote it).
The header: ``format``, ``metadata`` (the ONNX file's metadata map), ``key_fields`` and ``key`` (what the
engine depends on: see tensorrt_engine.engine_key_fields), build facts. trtexec cannot load such a file;
``split_engine_file`` returns the plan for tools that need it.
"""
from __future__ import annotations

import json
import os
import struct

from fer_ros.backends.base import BackendError
from fer_ros.io.files import atomic_write_bytes

CACHE_ENV = 'FER_ROS_ENGINE_CACHE'
MAGIC = b'FERTRT01'
HEADER_FORMAT = 2                 # 1 was the <engine>.json sidecar of earlier versions
_LENGTH = struct.Struct('<I')
MAX_HEADER_BYTES = 1 << 20


def write_engine_file(path: str, plan: bytes, header: dict) -> dict:
    """Write ``plan`` with ``header`` (JSON-able) atomically; returns the header as stored."""
    header = {**header, 'format': HEADER_FORMAT}
    text = json.dumps(header, sort_keys=True, separators=(',', ':')).encode('utf-8')
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f'{path}: engine header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}')
    atomic_write_bytes(path, MAGIC + _LENGTH.pack(len(text)) + text + bytes(plan))
    return header


def split_engine_file(path: str) -> tuple[dict, bytes]:
    """(header dict, TensorRT plan bytes) of a fer_ros engine file.

    Raises:
        BackendError: missing file, or not a fer_ros engine file (a bare TensorRT plan, an engine with the
            old ``.json`` sidecar, a truncated file); the message names the file and how to make one.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise BackendError(f'{path}: cannot read the engine ({exc})') from exc
    rebuild = 'build it with fer-build-engine, which stores the model metadata inside the engine file'
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LENGTH.size:
        raise BackendError(f'{path}: not a fer_ros engine file (a bare TensorRT plan has no model metadata); {rebuild}')
    start = len(MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise BackendError(f'{path}: truncated fer_ros engine file (header of {length} bytes); {rebuild}')
    try:
        header = json.loads(data[start:start + length].decode('utf-8'))
        if not isinstance(header, dict) or header.get('format') != HEADER_FORMAT:
            raise ValueError(f"header format {header.get('format') if isinstance(header, dict) else header!r} "
                             f'is not {HEADER_FORMAT}')
        if not isinstance(header.get('metadata'), dict):
            raise ValueError('no metadata map')
    except (UnicodeDecodeError, ValueError) as exc:
        raise BackendError(f'{path}: invalid fer_ros engine header ({exc}); {rebuild}') from exc
    plan = data[start + length:]
    if not plan:
        raise BackendError(f'{path}: the engine file holds no TensorRT plan; {rebuild}')
    return header, plan


def read_engine_header(path: str) -> dict:
    """The header of a fer_ros engine file (see ``split_engine_file``)."""
    return split_engine_file(path)[0]


def default_engine_cache_dir() -> str:
    """$FER_ROS_ENGINE_CACHE, else $XDG_CACHE_HOME/fer_ros/engines, else ~/.cache/fer_ros/engines."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'fer_ros', 'engines')


def prepare_cache_dir(cache_dir: str | None, sub: str = '') -> str:
    """The engine cache folder (``cache_dir`` or the default) and ``sub`` inside it, created with every missing
    parent (ONNX Runtime's TensorRT provider creates only the last level, and fails to start without it).

    Raises:
        BackendError: it cannot be created (the message names it).
    """
    folder = os.path.join(cache_dir or default_engine_cache_dir(), sub)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise BackendError(f'cannot create the TensorRT engine cache folder {folder}: {exc}; set '
                           f'tensorrt_engine_cache_dir (or ${CACHE_ENV}) to a writable folder') from exc
    return os.path.normpath(folder)
