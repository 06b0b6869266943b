"""Evaluation numbers and plots: confusion matrix, accuracy, per-class recall, training curves."""
from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64[K, K]; row = true class, column = predicted class."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes
                       ).reshape(num_classes, num_classes)


def summarize(cm: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, per-class recall / precision / support and their unweighted means.

    Classes with no test images get recall None (not 0, which would look like a failure).
    """
    cm = np.asarray(cm, np.int64)
    total = int(cm.sum())
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    diag = np.diag(cm)
    recall = {lab: (float(diag[i] / support[i]) if support[i] else None) for i, lab in enumerate(labels)}
    precision = {lab: (float(diag[i] / predicted[i]) if predicted[i] else None) for i, lab in enumerate(labels)}
    present = [v for v in recall.values() if v is not None]
    return {
        'accuracy': float(diag.sum() / total) if total else 0.0,
        'mean_class_recall': float(np.mean(present)) if present else 0.0,
        'recall': recall,
        'precision': precision,
        'support': {lab: int(support[i]) for i, lab in enumerate(labels)},
        'num_images': total,
        'confusion_matrix': cm.tolist(),
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


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str, title: str = '') -> None:
    """PNG: row-normalised confusion matrix (colour, percent) with the raw counts in each cell."""
    plt = _pyplot()
    cm = np.asarray(cm, np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2, 1.0 * k + 1.5), dpi=110)
    im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=45, ha='right')
    ax.set_yticks(range(k), labels)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f'{100 * norm[i, j]:.0f}%\n{cm[i, j]}', ha='center', va='center', fontsize=7,
                    color='white' if norm[i, j] > 0.5 else 'black')
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='share of true class')
    ax.set_title(title or 'confusion matrix')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
