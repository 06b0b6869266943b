"""Offline evaluation: a bag's images through the Pipeline in this process, configured like the node.

The node's parameter file (config/fer.yaml or the user's) and ``NAME=VALUE`` overrides are read and
validated with the node's own parameter table (``fer_ros.settings.params``), so offline and live runs use
the same settings. ``run_offline`` replays the node's command timer on the image clock.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from fer_ros.core.types import Command
from fer_ros.evaluation.bag_io import BagReader, stamp_ns
from fer_ros.evaluation.report import DECODE_ERROR, FrameRecord
from fer_ros.hri.stamps import StampClock
from fer_ros.io.image_codec import ImageDecodeError, decode_message
from fer_ros.settings.params import NODE_NAME


class EvalError(RuntimeError):
    """Evaluation cannot start; the text says why (shown as is)."""


# --------------------------------------------------------------------------- node parameters

def read_params_file(path: str) -> dict:
    """ros__parameters for fer_node from a ROS 2 parameter YAML ('/**' entries first, then the node's own).

    Raises:
        EvalError: unreadable file or no parameters for fer_node in it.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f'{path}: cannot read parameter file: {exc}') from None
    values: dict = {}
    found = False
    for key in ('/**', '**', NODE_NAME, '/' + NODE_NAME):
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict) and isinstance(section.get('ros__parameters'), dict):
            values.update(section['ros__parameters'])
            found = True
    if not found:
        raise EvalError(f'{path}: no "{NODE_NAME}: ros__parameters:" (or "/**:") section')
    return values


def parse_overrides(items: list[str]) -> dict[str, str]:
    """['name=value', ...] -> {name: value text} (the text is typed as YAML, like `ros2 run -p`).

    Raises:
        EvalError: an item without '='.
    """
    out = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name.strip():
            raise EvalError(f'--param {item!r}: expected NAME=VALUE')
        out[name.strip()] = value.strip()
    return out


def default_params_file() -> str | None:
    """The packaged config/fer.yaml, or None where it is not installed (a plain pip install): the
    parameter table's defaults, which that file mirrors, apply then."""
    from fer_ros.util.paths import find_config_file
    try:
        return find_config_file('fer.yaml')
    except FileNotFoundError:
        return None


def node_parameters(params_file: str | None, overrides: dict[str, str]) -> dict:
    """Validated fer_node parameter values: the file (None: the defaults), then the overrides (YAML-typed).

    Raises:
        EvalError: a bad file, an unknown parameter or a bad value (names the parameter).
    """
    from fer_ros.settings import params

    values = read_params_file(params_file) if params_file else {}
    for name, text in overrides.items():
        values[name] = yaml.safe_load(text) if text != '' else ''
    try:
        return params.validate_all(values)
    except params.ParameterError as exc:
        raise EvalError(f'{params_file} / --param: {exc}') from None


# --------------------------------------------------------------------------- offline mode

@dataclass
class OfflineRun:
    records: list[FrameRecord]
    wall_s: float
    model: str
    backend: str


def run_offline(reader: BagReader, topic: str, values: dict, progress: bool = True,
                max_frames: int | None = None) -> OfflineRun:
    """Decode every image of ``topic`` and run it through the Pipeline configured by ``values``.

    The node's command timer is replayed on the image clock (Pipeline.tick every 1/command_tick_hz s
    of stamps between frames), so HOLD and heartbeat commands appear as they would on the robot.
    """
    from tqdm import tqdm

    from fer_ros.backends import create_pipeline
    from fer_ros.settings import params

    # scans on the frame they are due on, never in the background: the output depends only on the bag
    pipeline = create_pipeline(dataclasses.replace(params.pipeline_config(values), background_scan=False))
    tick_s = 1.0 / values['command_tick_hz']
    max_pixels = values['max_image_pixels']
    info = reader.topics[topic]
    total = min(info.count, max_frames) if info.count is not None and max_frames else (max_frames or info.count)
    clock = StampClock()
    records: list[FrameRecord] = []
    next_tick = None
    start = time.perf_counter()
    bar = tqdm(total=total, unit='frame', desc='evaluating', disable=not progress)
    first_ns = reader.start_ns or 0      # None only for an empty bag, which has no message below
    try:
        for index, m in enumerate(reader.messages([topic])):
            if max_frames is not None and index >= max_frames:
                break
            bar.update()
            stamp = clock.effective(stamp_ns(m.msg), m.log_ns)
            t_s = (m.log_ns - first_ns) * 1e-9
            t0 = time.perf_counter()
            try:
                bgr = decode_message(m.msg, max_pixels)
            except ImageDecodeError as exc:
                records.append(FrameRecord(index, t_s, stamp, None, DECODE_ERROR, str(exc)))
                continue
            decode_ms = (time.perf_counter() - t0) * 1e3
            seconds = stamp * 1e-9
            ticked: list[Command] = []
            while next_tick is not None and next_tick < seconds:
                ticked += pipeline.tick(next_tick)
                next_tick += tick_s
            previous = next((r.result for r in reversed(records) if r.result is not None), None)
            if ticked and previous is not None:
                previous.commands.extend(ticked)             # they happened after that frame
            result = pipeline.process(bgr, seconds, camera=str(getattr(m.msg.header, 'frame_id', '')))
            next_tick = seconds + tick_s
            records.append(FrameRecord(index, t_s, stamp, result, timing_ms={'decode': decode_ms}))
    finally:
        bar.close()
    wall = time.perf_counter() - start
    model = values['model_path'] or '(default)'
    run = OfflineRun(records, wall, model, pipeline.backend_name)
    pipeline.close()
    if clock.replaced:
        reader.warnings.append(f'{clock.replaced} frame(s) had a header stamp not after the previous one '
                               '(zero or repeated stamps?); they were given stamps from the log time')
    return run
