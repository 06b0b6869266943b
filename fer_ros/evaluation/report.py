"""Evaluation results -> report.json (every figure), report.md (summary), frames.csv (per frame / face)
and the PNG figures, all in one output folder.

Per-frame CSV: one row per face per frame, plus one row per labelled face that was not found, plus
one row for a frame with neither (so every frame appears). Frame-level columns (status, timings,
commands) repeat on each row of a frame. ``scored`` rows are exactly what the confusion matrix counts:
true = ``label``, predicted = ``expression`` (empty = not found, the matrix's "no face" column).
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fer_ros.core.types import FrameResult
from fer_ros.util.stats import summary

from . import plots
from .ground_truth import Labels
from .metrics import Confusion, confusion

# Status of a frame in the evaluation.
OK = 'ok'
DECODE_ERROR = 'decode_error'   # the image message did not decode
NO_OUTPUT = 'no_output'         # live mode: the node published nothing for this frame (dropped)

STAGES = ('decode', 'detect', 'preprocess', 'infer', 'track', 'total', 'end_to_end')
FILES = {
    'json': 'report.json', 'markdown': 'report.md', 'frames_csv': 'frames.csv',
    'confusion_matrix': 'confusion_matrix.png', 'per_class': 'per_class.png',
    'latency_histogram': 'latency_histogram.png', 'stage_latency': 'stage_latency.png',
    'timeline': 'timeline.png',
}
CSV_COLUMNS = ['frame', 't_s', 'stamp', 'status', 'face_id', 'x', 'y', 'w', 'h', 'expression', 'confidence',
               'detection_score', 'valence', 'arousal', 'label', 'scored', 'correct', 'num_faces',
               'num_detections', 'commands', *[f'{s}_ms' for s in STAGES], 'error']


@dataclass
class FrameRecord:
    """One image of the evaluated topic and what the perception produced for it."""

    index: int                         # 0-based position on the topic
    t_s: float                         # log time - bag start, seconds
    stamp_ns: int                      # header.stamp of the image
    result: FrameResult | None = None  # None when status is not OK
    status: str = OK
    error: str = ''
    timing_ms: dict[str, float] = field(default_factory=dict)   # decode, end_to_end, ... (not in result)

    def stages_ms(self) -> dict[str, float]:
        out = {k: float(v) for k, v in (self.result.timing_ms if self.result else {}).items()
               if k in STAGES and isinstance(v, (int, float))}
        out.update(self.timing_ms)
        return out


@dataclass
class RunInfo:
    """What was evaluated and how (copied into report.json['input'] / ['run'])."""

    bag: str
    topic: str
    msgtype: str = ''
    storage: str = ''
    mode: str = 'offline'
    model: str = ''
    backend: str = ''
    labels_source: str = ''
    frames_in_bag: int | None = None
    wall_s: float | None = None        # time of the processing loop (offline throughput)
    warnings: list[str] = field(default_factory=list)
    damage: str | None = None
    extra: dict = field(default_factory=dict)   # mode-specific figures (live: rates, drops, diagnostics)


def command_time(rec: FrameRecord, command) -> float:
    """Seconds from the bag start at which ``command`` (attached to ``rec``) was decided: the frame's time
    shifted by the command's own stamp (timer commands come after their frame)."""
    if not command.stamp:
        return rec.t_s
    return rec.t_s + (command.stamp - rec.stamp_ns * 1e-9)


def frame_rows(records: Sequence[FrameRecord], labels: Labels | None) -> list[dict]:
    """Per-frame CSV rows (see module docstring); scoring decisions are made here and only here."""
    rows = []
    for rec in records:
        stages = rec.stages_ms()
        base = {'frame': rec.index, 't_s': f'{rec.t_s:.6f}', 'stamp': f'{rec.stamp_ns * 1e-9:.9f}',
                'status': rec.status, 'error': rec.error, 'scored': 0, 'correct': '',
                **{f'{s}_ms': f'{stages[s]:.3f}' for s in STAGES if s in stages}}
        result = rec.result
        if rec.status != OK or result is None:
            rows.append(base)
            continue
        base.update(num_faces=len(result.faces), num_detections=result.num_detections,
                    commands=' '.join(c.command + ('(hb)' if c.heartbeat else '') for c in result.commands))
        ids = [f.face_id for f in result.faces]
        targets = labels.targets(rec.t_s, ids) if labels is not None else None
        targets = targets or {}
        for face in result.faces:
            row = dict(base, face_id=face.face_id, expression=face.expression,
                       confidence=f'{face.confidence:.4f}', detection_score=f'{face.detection_score:.4f}',
                       valence=f'{face.valence:.4f}', arousal=f'{face.arousal:.4f}',
                       **dict(zip('xywh', (f'{v:.1f}' for v in face.box))))
            target = targets.get(face.face_id)
            if target is not None:
                row.update(label=target.expression, scored=1, correct=int(face.expression == target.expression))
            rows.append(row)
        for key, target in targets.items():
            if key not in ids:   # labelled but not found: a miss
                rows.append(dict(base, face_id=key, label=target.expression, scored=1, correct=0))
        if not result.faces and not targets:
            rows.append(base)
    return rows


def confusion_from_rows(rows: Sequence[dict]) -> Confusion:
    """Confusion matrix of the scored rows (also how a reader of frames.csv recomputes it)."""
    return confusion((r['label'], r.get('expression') or None) for r in rows if int(r.get('scored') or 0))


def _stage_values(records: Sequence[FrameRecord]) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for rec in records:
        for stage, ms in rec.stages_ms().items():
            values.setdefault(stage, []).append(ms)
    return values


def _round(obj, digits: int = 4):
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, digits)
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, digits) for v in obj]
    return obj


def build_report(records: Sequence[FrameRecord], labels: Labels | None, info: RunInfo,
                 rows: Sequence[dict] | None = None) -> dict:
    """Every figure of the evaluation as a JSON-able dict."""
    rows = frame_rows(records, labels) if rows is None else rows
    ok = [r for r in records if r.status == OK and r.result is not None]
    face_rows = [r for r in rows if r.get('expression')]
    scored = [r for r in rows if r['scored']]
    conf = confusion_from_rows(rows)
    labelled_frames = {r['frame'] for r in scored}
    stage_values = _stage_values(records)
    commands = [(command_time(rec, c), c) for rec in ok if rec.result is not None for c in rec.result.commands]
    duration = records[-1].t_s - records[0].t_s if len(records) > 1 else 0.0
    report = {
        'tool': 'fer-eval-bag',
        'created': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
        'input': {'bag': info.bag, 'topic': info.topic, 'message_type': info.msgtype, 'storage': info.storage,
                  'frames_on_topic': info.frames_in_bag, 'duration_s': duration},
        'run': {'mode': info.mode, 'model': info.model, 'backend': info.backend, 'labels': info.labels_source},
        'warnings': list(info.warnings),
        'damage': info.damage,
        'counts': {
            'frames': len(records),
            'processed': len(ok),
            'decode_errors': sum(r.status == DECODE_ERROR for r in records),
            'no_output': sum(r.status == NO_OUTPUT for r in records),
            'frames_with_faces': sum(r.result is not None and bool(r.result.faces) for r in ok),
            'face_detections': len(face_rows),
            'face_ids': sorted({r['face_id'] for r in face_rows}, key=lambda f: (len(f), f)),
            'labelled_frames': len(labelled_frames),
            'unlabelled_frames': len(records) - len(labelled_frames),
            'scored': conf.total, 'correct': conf.correct, 'missed': conf.missed,
        },
        'accuracy': conf.accuracy(),
        'macro': conf.macro() if conf.total else None,
        'per_class': {k: v for k, v in conf.per_class().items() if v['support'] or v['predicted']},
        'confusion': conf.to_json(),
        'expressions': dict(Counter(r['expression'] for r in face_rows).most_common()),
        'commands': {
            'changes': [{'t_s': t, 'command': c.command, 'priority': c.priority, 'face_id': c.source_face_id,
                         'expression': c.expression, 'confidence': c.confidence}
                        for t, c in commands if not c.heartbeat],
            'counts': dict(Counter(c.command for _, c in commands if not c.heartbeat)),
            'heartbeats': sum(c.heartbeat for _, c in commands),
        },
        'latency_ms': {s: summary(v) for s, v in stage_values.items()},
        'throughput': {},
        **info.extra,
    }
    if info.wall_s:
        report['throughput'] = {'wall_s': info.wall_s, 'frames_per_s': len(records) / info.wall_s}
    return _round(report)


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return 'n/a'
    if pct:
        return f'{100 * v:.1f} %'
    return f'{v:.2f}' if isinstance(v, float) else str(v)


def _node_stage_table(diagnostics: dict) -> list[str]:
    """Markdown rows from fer_node diagnostics keys latency_<stage>_p<q>_ms."""
    stages: dict[str, dict[str, str]] = {}
    for key, value in diagnostics.items():
        if key.startswith('latency_') and key.endswith('_ms'):
            stage, _, q = key[len('latency_'):-len('_ms')].rpartition('_')
            stages.setdefault(stage, {})[q] = value
    return [f'| {stage} | {v.get("p50", "n/a")} | {v.get("p90", "n/a")} | {v.get("p99", "n/a")} |'
            for stage, v in stages.items()]


def _markdown(report: dict, figures: dict[str, str]) -> str:
    c = report['counts']
    inp, run = report['input'], report['run']
    lines = [f'# Evaluation of `{inp["bag"]}`', '',
             f'- topic `{inp["topic"]}` ({inp["message_type"]}, {inp["storage"]}), '
             f'{c["frames"]} frames over {_fmt(inp["duration_s"])} s',
             f'- mode **{run["mode"]}**, model `{run["model"]}`, backend {run["backend"]}',
             f'- labels: {run["labels"] or "none"}', '']
    if report['damage'] or report['warnings']:
        lines += ['## Warnings', '']
        lines += [f'- {w}' for w in report['warnings']]
        if report['damage']:
            lines.append(f'- **{report["damage"]}**')
        lines.append('')
    lines += ['## Counts', '', '| frames | processed | decode errors | no output | with faces | face detections '
              '| labelled frames | scored | correct | missed |', '|' + '---|' * 10,
              f'| {c["frames"]} | {c["processed"]} | {c["decode_errors"]} | {c["no_output"]} | '
              f'{c["frames_with_faces"]} | {c["face_detections"]} | {c["labelled_frames"]} | {c["scored"]} | '
              f'{c["correct"]} | {c["missed"]} |', '',
              f'Face ids: {", ".join(c["face_ids"]) or "none"}. Expressions seen: '
              + (', '.join(f'{k} {v}' for k, v in report['expressions'].items()) or 'none') + '.', '']
    if report['accuracy'] is not None:
        macro = report['macro']
        lines += ['## Accuracy', '', f'Accuracy **{_fmt(report["accuracy"], True)}** over {c["scored"]} scored '
                  f'faces ({c["missed"]} labelled faces not found count as wrong); macro precision '
                  f'{_fmt(macro["precision"])}, macro recall {_fmt(macro["recall"])}, macro F1 {_fmt(macro["f1"])}.',
                  '', '| class | support | predicted | precision | recall | F1 |', '|---|---|---|---|---|---|']
        for name, v in report['per_class'].items():
            lines.append(f'| {name} | {v["support"]} | {v["predicted"]} | {_fmt(v["precision"])} | '
                         f'{_fmt(v["recall"])} | {_fmt(v["f1"])} |')
        lines += ['', f'![confusion matrix]({figures["confusion_matrix"]}) ![per class]({figures["per_class"]})', '']
    lines += ['## Latency', '', '| stage | n | median ms | p90 ms | p99 ms | max ms |', '|---|---|---|---|---|---|']
    for stage, s in report['latency_ms'].items():
        lines.append(f'| {stage} | {s["n"]} | {_fmt(s["median"])} | {_fmt(s["p90"])} | {_fmt(s["p99"])} | '
                     f'{_fmt(s["max"])} |')
    if report['throughput']:
        t = report['throughput']
        lines += ['', f'Throughput: **{_fmt(t["frames_per_s"])} frames/s** ({c["frames"]} frames in '
                  f'{_fmt(t["wall_s"])} s, decoding included).']
    if 'live' in report:
        live = report['live']
        lines += ['', f'Live: {live["published"]} frames published at ×{live["speed"]} speed '
                  f'({_fmt(live["publish_rate_hz"])} Hz), {live["answered"]} answered by the node, '
                  f'{live["dropped"]} without output (drop rate {_fmt(live["drop_rate"], True)}). '
                  'end_to_end = publish of the image -> receipt of its expressions message.']
        node_stages = _node_stage_table(live.get('node_diagnostics') or {})
        if node_stages:
            lines += ['', "The node's own per-stage latency (its last /diagnostics message):", '',
                      '| stage | p50 ms | p90 ms | p99 ms |', '|---|---|---|---|'] + node_stages
    lines += ['', f'![latency histogram]({figures["latency_histogram"]}) ![stage latency]({figures["stage_latency"]})',
              '', '## Timeline', '', f'![timeline]({figures["timeline"]})', '']
    changes = report['commands']['changes']
    lines += ['## Commands', '', f'{len(changes)} command changes, {report["commands"]["heartbeats"]} heartbeats.', '']
    if changes:
        lines += ['| t (s) | command | face | expression | confidence |', '|---|---|---|---|---|']
        lines += [f'| {_fmt(ch["t_s"])} | {ch["command"]} | {ch["face_id"] or "-"} | {ch["expression"] or "-"} | '
                  f'{_fmt(ch["confidence"])} |' for ch in changes[:50]]
        if len(changes) > 50:
            lines.append(f'\n({len(changes) - 50} more in report.json)')
    lines += ['', f'Per-frame results: [{FILES["frames_csv"]}]({FILES["frames_csv"]}); every figure: '
              f'[{FILES["json"]}]({FILES["json"]}).', '']
    return '\n'.join(lines)


def write_report(out_dir: str | Path, records: Sequence[FrameRecord], labels: Labels | None,
                 info: RunInfo) -> dict:
    """Write report.json, report.md, frames.csv and the PNGs into ``out_dir`` (created if needed).

    The confusion-matrix and per-class figures are written only when something was scored.
    Returns the report dict (also stored as report.json), with ``files`` listing what was written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = frame_rows(records, labels)
    report = build_report(records, labels, info, rows)

    with open(out / FILES['frames_csv'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, restval='')
        writer.writeheader()
        writer.writerows(rows)

    written = {'json': FILES['json'], 'markdown': FILES['markdown'], 'frames_csv': FILES['frames_csv']}
    conf = confusion_from_rows(rows)
    if conf.total:
        plots.plot_confusion(conf, out / FILES['confusion_matrix'])
        plots.plot_per_class(conf.per_class(), out / FILES['per_class'])
        written.update(confusion_matrix=FILES['confusion_matrix'], per_class=FILES['per_class'])
    stage_values = _stage_values(records)
    main = 'end_to_end' if 'end_to_end' in stage_values else 'total'
    plots.plot_latency_histogram(stage_values.get(main, []), out / FILES['latency_histogram'], name=main)
    plots.plot_stage_latency({s: stage_values[s] for s in STAGES if s in stage_values}, out / FILES['stage_latency'])
    _timeline(records, labels, out / FILES['timeline'])
    written.update(latency_histogram=FILES['latency_histogram'], stage_latency=FILES['stage_latency'],
                   timeline=FILES['timeline'])

    report['files'] = written
    (out / FILES['markdown']).write_text(_markdown(report, FILES))
    (out / FILES['json']).write_text(json.dumps(report, indent=2))
    return report


def _timeline(records: Sequence[FrameRecord], labels: Labels | None, path: Path) -> None:
    face_points: dict[str, list[tuple[float, str]]] = {}
    commands: list[tuple[float, str, bool]] = []
    for rec in records:
        if rec.result is None:
            continue
        for face in rec.result.faces:
            face_points.setdefault(face.face_id, []).append((rec.t_s, face.expression))
        commands += [(command_time(rec, c), c.command, c.heartbeat) for c in rec.result.commands]
    t_end = records[-1].t_s if records else 0.0
    dts = [b.t_s - a.t_s for a, b in zip(records, records[1:]) if b.t_s > a.t_s]
    frame_dt = float(sorted(dts)[len(dts) // 2]) if dts else 0.1
    ranges = [(r.start_s, r.end_s, r.expression, r.face_id) for r in labels.ranges] if labels else []
    plots.plot_timeline(face_points, commands, ranges, t_end, path, frame_dt=frame_dt)


__all__ = ['FrameRecord', 'RunInfo', 'frame_rows', 'confusion_from_rows', 'build_report', 'write_report',
           'OK', 'DECODE_ERROR', 'NO_OUTPUT', 'STAGES', 'FILES', 'CSV_COLUMNS']
