"""Training's numbers and plots: the test-set confusion counted per batch, its scores and picture (through
fer_ros.evaluation's Confusion and plot, one metrics stack for training and bag evaluation), the
per-epoch CSV and the training curves."""
from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

from fer_ros.evaluation.metrics import Confusion


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64[K, K]; row = true class, column = predicted class."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes
                       ).reshape(num_classes, num_classes)


def summarize(cm: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, per-class recall / precision / support and the mean class recall of a test-set
    confusion int64[K, K] (through fer_ros.evaluation.metrics.Confusion, the bag evaluation's scores).

    Classes with no test images get recall None (not 0, which would look like a failure).
    """
    conf = Confusion.from_counts(cm, labels)
    per_class = conf.per_class()
    return {
        'accuracy': conf.accuracy() or 0.0,
        'mean_class_recall': conf.macro()['recall'] or 0.0,
        'recall': {lab: v['recall'] for lab, v in per_class.items()},
        'precision': {lab: v['precision'] for lab, v in per_class.items()},
        'support': {lab: v['support'] for lab, v in per_class.items()},
        'num_images': conf.total,
        'confusion_matrix': np.asarray(cm, np.int64).tolist(),
    }


def recall_table(summary: dict) -> str:
    """Markdown table of per-class recall and support."""
    lines = ['| class | recall | precision | images |', '|---|---:|---:|---:|']
    for lab, rec in summary['recall'].items():
        prec = summary['precision'][lab]
        lines.append(f"| {lab} | {'—' if rec is None else f'{100 * rec:.2f} %'} | "
                     f"{'—' if prec is None else f'{100 * prec:.2f} %'} | {summary['support'][lab]} |")
    lines.append(f"| **all** | **{100 * summary['accuracy']:.2f} %** (accuracy) | | {summary['num_images']} |")
    return '\n'.join(lines)


def append_csv(path: str, row: dict) -> None:
    """Append ``row`` to a CSV file, writing the header when the file is new."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, 'a', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str, title: str = '') -> None:
    """PNG of a test-set confusion int64[K, K] (fer_ros.evaluation.plots.plot_confusion)."""
    from fer_ros.evaluation.plots import plot_confusion as plot

    plot(Confusion.from_counts(cm, labels), path, title or 'confusion matrix')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def plot_curves(history: list[dict], path: str, title: str = '') -> None:
    """PNG: loss and accuracy per epoch (train, val if any, test)."""
    plt = _pyplot()
    epochs = [r['epoch'] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for split in ('train', 'val', 'test'):
        loss = [r.get(f'{split}_loss') for r in history]
        acc = [r.get(f'{split}_acc') for r in history]
        pts = [(e, lo, a) for e, lo, a in zip(epochs, loss, acc) if lo not in (None, '')]
        if not pts:
            continue
        e, lo, a = zip(*pts)
        ax_loss.plot(e, lo, label=split)
        ax_acc.plot(e, [100 * v for v in a], label=split)
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('cross-entropy')
    ax_acc.set_xlabel('epoch')
    ax_acc.set_ylabel('accuracy (%)')
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
