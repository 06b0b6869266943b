"""PNG figures for evaluation reports (matplotlib, object API on the Agg canvas: no pyplot, no global
backend switch, safe in any process).

Every function takes plain data, writes one PNG and returns its path.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.util.stats import percentiles

from .metrics import Confusion

# One fixed colour per expression so every figure and every report reads the same way.
EXPRESSION_COLORS: dict[str, str] = {
    'angry': '#d62728', 'disgusted': '#8c564b', 'scared': '#9467bd', 'happy': '#2ca02c',
    'sad': '#1f77b4', 'surprised': '#ff7f0e', 'neutral': '#7f7f7f',
}
_OTHER_COLOR = '#bcbd22'
DPI = 100


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, format='png')
    return path


def color_of(expression: str) -> str:
    return EXPRESSION_COLORS.get(expression, _OTHER_COLOR)


def plot_confusion(conf: Confusion, path: str | Path, title: str = 'Confusion matrix') -> Path:
    """Counts in each cell; colour = share of the true class's row (so rare classes stay visible). The
    MISSED column is drawn only when some labelled face was missed."""
    matrix = conf.matrix if conf.missed else conf.matrix[:, :len(conf.classes)]
    columns = conf.columns if conf.missed else conf.classes
    rows = matrix.astype(np.float64)
    shares = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot()
    ax.imshow(shares, cmap='Blues', vmin=0.0, vmax=1.0, aspect='auto')
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha='center', va='center',
                        color='white' if shares[i, j] > 0.5 else 'black', fontsize=10)
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha='right')
    ax.set_yticks(range(len(conf.classes)), conf.classes)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true (label)')
    acc = conf.accuracy()
    ax.set_title(f'{title}  (n = {conf.total}, accuracy = {acc:.3f})' if acc is not None else title)
    return _save(fig, path)


def plot_per_class(per_class: Mapping[str, Mapping[str, float | int | None]], path: str | Path) -> Path:
    """Precision and recall bars for each class that has support or predictions."""
    names = [n for n, v in per_class.items() if v['support'] or v['predicted']]
    fig = _figure(max(5.0, 1.1 * len(names) + 2), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    for offset, key, color in ((-0.2, 'precision', '#4c72b0'), (0.2, 'recall', '#dd8452')):
        vals = [per_class[n][key] for n in names]
        ax.bar(x + offset, [v if v is not None else 0.0 for v in vals], width=0.4, label=key, color=color)
        for xi, v in zip(x + offset, vals):
            ax.text(xi, (v or 0.0) + 0.02, 'n/a' if v is None else f'{v:.2f}', ha='center', fontsize=8)
    ax.set_xticks(x, [f'{n}\n(n={per_class[n]["support"]})' for n in names])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel('score')
    ax.set_title('Per-class precision and recall')
    ax.legend(loc='lower right')
    return _save(fig, path)


def plot_latency_histogram(values_ms: Sequence[float], path: str | Path, name: str = 'total') -> Path:
    """Histogram with median / p90 / p99 marked."""
    vals = np.asarray([v for v in values_ms if v is not None and math.isfinite(v)], dtype=np.float64)
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    if vals.size:
        ax.hist(vals, bins=min(50, max(5, vals.size // 3)), color='#4c72b0', alpha=0.85)
        marks = percentiles(vals)
        for q, style in ((50, '-'), (90, '--'), (99, ':')):
            ax.axvline(marks[f'p{q}'], color='black', linestyle=style, linewidth=1,
                       label=f'p{q} = {marks[f"p{q}"]:.1f} ms')
        ax.legend()
    else:
        ax.text(0.5, 0.5, 'no latency samples', ha='center', va='center', transform=ax.transAxes)
    ax.set_xlabel(f'{name} latency (ms)')
    ax.set_ylabel('frames')
    ax.set_title(f'{name} latency per frame (n = {vals.size})')
    return _save(fig, path)


def plot_stage_latency(stages_ms: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """One box per stage (whiskers p5..p95, no outlier dots), median written beside each box."""
    names = [n for n, v in stages_ms.items() if len(v)]
    fig = _figure(max(6.0, 1.2 * len(names) + 2), 4.0)
    ax = fig.add_subplot()
    if names:
        data = [np.asarray(stages_ms[n], dtype=np.float64) for n in names]
        # tick labels set apart: boxplot's own keyword is `labels` before matplotlib 3.9 (the Jetson
        # pin, requirements-jetson.txt) and `tick_labels` after
        ax.boxplot(data, whis=(5, 95), showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names)
        for i, d in enumerate(data, start=1):
            ax.text(i + 0.3, float(np.median(d)), f'{np.median(d):.1f}', va='center', fontsize=8)
    else:
        ax.text(0.5, 0.5, 'no timing samples', ha='center', va='center', transform=ax.transAxes)
    ax.set_ylabel('ms per frame')
    ax.set_title('Latency per stage (box: quartiles, whiskers: p5-p95)')
    return _save(fig, path)


def plot_timeline(face_points: Mapping[str, Sequence[tuple[float, str]]],
                  commands: Sequence[tuple[float, str, bool]],
                  label_ranges: Sequence[tuple[float, float, str, str]],
                  t_end: float, path: str | Path, frame_dt: float = 0.1) -> Path:
    """Expression timeline: one row per face id (a bar per frame, coloured by expression), a row for
    the ground-truth labels (if any) and the commands marked as vertical lines (heartbeats as ticks).

    face_points: face id -> [(t_s, expression)]. commands: [(t_s, command, heartbeat)].
    label_ranges: [(start_s, end_s, expression, face_id)] (infinite ends are clipped to the bag).
    """
    faces = sorted(face_points, key=lambda f: (len(f), f))     # f2 before f10
    first_face_row = 1 if label_ranges else 0                   # row 0 holds the labels
    rows = (['labels'] if label_ranges else []) + faces
    fig = _figure(11.0, 1.6 + 0.45 * max(len(rows), 1) + 0.6)
    ax = fig.add_subplot()
    width = max(frame_dt, 1e-3)
    used: set[str] = set()
    for y, face in enumerate(faces, start=first_face_row):
        pts = face_points[face]
        by_expr: dict[str, list[tuple[float, float]]] = {}
        for t, expr in pts:
            by_expr.setdefault(expr, []).append((t - width / 2, width))
        for expr, spans in by_expr.items():
            ax.broken_barh(spans, (y - 0.35, 0.7), facecolors=color_of(expr))
            used.add(expr)
    if label_ranges:
        for start, end, expr, face in label_ranges:
            start, end = max(start, 0.0), min(end, t_end)
            ax.broken_barh([(start, end - start)], (-0.35, 0.7), facecolors=color_of(expr),
                           edgecolor='black', hatch='//' if face else None)
            ax.text(start, 0.45, face or 'all faces', fontsize=7, va='bottom')
            used.add(expr)
    top = len(rows) - 0.4
    for t, command, heartbeat in commands:
        if heartbeat:
            ax.plot([t], [top], marker='|', color='black', markersize=6)
        else:
            ax.axvline(t, color='black', linewidth=0.8, linestyle='--')
            ax.text(t, top + 0.05, command, rotation=90, fontsize=7, va='bottom', ha='right')
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) + 0.9)
    ax.set_xlim(-width, max(t_end, width) + width)
    ax.set_xlabel('time from bag start (s)')
    ax.set_title('Expressions per face, labels and commands (dashed: command changes, ticks: heartbeats)')
    order = [e for e in EXPRESSIONS if e in used] + sorted(used - set(EXPRESSIONS))
    if order:
        fig.legend(handles=[Patch(color=color_of(e), label=e) for e in order], loc='outside lower center',
                   ncols=min(len(order), 7), fontsize=8)
    return _save(fig, path)
