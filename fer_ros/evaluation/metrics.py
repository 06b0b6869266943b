"""Scores and statistics: confusion matrix, accuracy, per-class precision/recall/F1, latency summaries.

A scored item is a (true expression, predicted expression or None) pair; None means the labelled face
was not found in the frame (a miss). Misses go to the extra last column ``MISSED`` of the confusion
matrix and count against recall and accuracy, never against any class's precision.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fer_ros.core.labels import EXPRESSIONS

MISSED = 'no face'


@dataclass
class Confusion:
    """matrix: int64[K, K + 1], rows = true class, columns = predicted class then MISSED."""

    classes: tuple[str, ...]
    matrix: np.ndarray

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.classes, MISSED)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.matrix[:, :len(self.classes)]))

    @property
    def missed(self) -> int:
        return int(self.matrix[:, -1].sum())

    def accuracy(self) -> float | None:
        """Correct / scored (misses included); None when nothing was scored."""
        return self.correct / self.total if self.total else None

    def per_class(self) -> dict[str, dict[str, float | int | None]]:
        """class -> precision, recall, f1 (None when undefined: no prediction / no support), support."""
        out = {}
        for i, name in enumerate(self.classes):
            tp = int(self.matrix[i, i])
            predicted = int(self.matrix[:, i].sum())
            support = int(self.matrix[i].sum())
            precision = tp / predicted if predicted else None
            recall = tp / support if support else None
            if precision is None or recall is None:
                f1 = None
            else:
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[name] = {'precision': precision, 'recall': recall, 'f1': f1, 'support': support,
                         'predicted': predicted}
        return out

    def macro(self) -> dict[str, float | None]:
        """Unweighted means over classes with support (balanced accuracy = macro recall)."""
        rows = [v for v in self.per_class().values() if v['support']]
        if not rows:
            return {'precision': None, 'recall': None, 'f1': None}

        def mean(key):
            vals = [r[key] if r[key] is not None else 0.0 for r in rows]
            return float(np.mean(vals))
        return {'precision': mean('precision'), 'recall': mean('recall'), 'f1': mean('f1')}

    @classmethod
    def from_counts(cls, counts: np.ndarray, classes: Sequence[str]) -> Confusion:
        """From a square int[K, K] count matrix (rows true, columns predicted; no misses), e.g. the
        classifier's test-set confusion that training accumulates."""
        counts = np.asarray(counts, np.int64)
        if counts.shape != (len(classes), len(classes)):
            raise ValueError(f'confusion counts must be [{len(classes)}, {len(classes)}], got {list(counts.shape)}')
        return cls(tuple(classes), np.concatenate([counts, np.zeros((len(classes), 1), np.int64)], axis=1))

    def to_json(self) -> dict:
        return {'rows_true': list(self.classes), 'columns_predicted': list(self.columns),
                'matrix': self.matrix.tolist()}


def confusion(pairs: Iterable[tuple[str, str | None]], classes: Sequence[str] = EXPRESSIONS) -> Confusion:
    """Count (true, predicted-or-None) pairs.

    Raises:
        ValueError: a true or predicted word that is not in ``classes``.
    """
    classes = tuple(classes)
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes) + 1), dtype=np.int64)
    for true, pred in pairs:
        if true not in index:
            raise ValueError(f'confusion: true label {true!r} is not one of {classes}')
        if pred is not None and pred not in index:
            raise ValueError(f'confusion: predicted label {pred!r} is not one of {classes}')
        matrix[index[true], len(classes) if pred is None else index[pred]] += 1
    return Confusion(classes, matrix)
