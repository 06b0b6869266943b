"""Ground-truth labels for a recording: time ranges from a CSV, or one expression for the whole bag.

CSV format (comma separated; an optional header row; blank lines and lines starting with ``#`` are
ignored)::

    start_s,end_s,expression[,face_id]
    0.0,4.0,happy
    4.0,6.5,surprised,f2

Times are seconds from the start of the bag (the log time of its earliest message, as ``ros2 bag
info`` and Foxglove count); a range covers ``start_s <= t < end_s``. ``expression`` is any spelling
``fer_ros.core.labels.canonical`` knows (``fear`` -> ``scared``). Without ``face_id`` the label applies
to every face in the frame; with it, only to that tracked face (ids as in the per-frame CSV), and it
overrides a frame-wide label for that face. Frames no range covers are reported but not scored.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from fer_ros.core.labels import canonical

COLUMNS = ('start_s', 'end_s', 'expression', 'face_id')


class LabelError(ValueError):
    """A labels file or value is invalid; the text names the file and row."""


@dataclass(frozen=True)
class LabelRange:
    start_s: float
    end_s: float
    expression: str          # canonical word
    face_id: str = ''        # '' = every face in the frame
    row: int = 0             # 1-based row in the CSV (0: not from a file)

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class Target:
    """One thing to score in a frame: the expected expression of one face (or of any face)."""

    expression: str
    face_id: str = ''        # '' = the label is frame-wide


class Labels:
    """A set of non-overlapping labelled time ranges (per face id); see the module docstring."""

    def __init__(self, ranges: list[LabelRange], source: str = ''):
        self.ranges = sorted(ranges, key=lambda r: (r.start_s, r.face_id))
        self.source = source
        self._check_overlaps()

    @classmethod
    def whole_bag(cls, expression: str) -> Labels:
        """One label for every frame of the bag.

        Raises:
            LabelError: not a known expression word.
        """
        try:
            word = canonical(expression)
        except ValueError as exc:
            raise LabelError(f'--label: {exc}') from None
        return cls([LabelRange(-math.inf, math.inf, word)], source=f'whole bag: {word}')

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> Labels:
        """Read a labels CSV.

        Raises:
            LabelError: missing file, or a row with a wrong column count, a non-number, a negative or
                empty range, an unknown expression, or overlapping ranges (names file and rows).
        """
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise LabelError(f'{path}: cannot read labels: {exc.strerror}') from None
        ranges: list[LabelRange] = []
        for row_no, row in enumerate(csv.reader(text.splitlines()), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith('#'):
                continue
            if not ranges and cells[0].lower() == COLUMNS[0]:
                continue  # header
            ranges.append(_parse_row(path, row_no, cells))
        if not ranges:
            raise LabelError(f'{path}: no label rows (expected {",".join(COLUMNS[:3])}[,face_id] per line)')
        return cls(ranges, source=str(path))

    def _check_overlaps(self) -> None:
        by_face: dict[str, list[LabelRange]] = {}
        for r in self.ranges:
            by_face.setdefault(r.face_id, []).append(r)
        for rows in by_face.values():
            for a, b in zip(rows, rows[1:]):   # sorted by start
                if b.start_s < a.end_s:
                    who = f" for face {a.face_id!r}" if a.face_id else ''
                    raise LabelError(f'{self.source}: rows {a.row} and {b.row} overlap{who} '
                                     f'([{a.start_s}, {a.end_s}) and [{b.start_s}, {b.end_s}))')

    def targets(self, t: float, face_ids: list[str]) -> dict[str, Target] | None:
        """What to score at time ``t`` (seconds from bag start) given the face ids present.

        Returns None when no range covers ``t`` (frame not scored). Otherwise a mapping
        key -> Target where key is a present face id (its expected expression), a labelled face id that
        is absent (a miss), or '' for a frame-wide label in a frame with no face (a miss).
        """
        active = [r for r in self.ranges if r.covers(t)]
        if not active:
            return None
        frame_wide = next((r for r in active if not r.face_id), None)
        specific = {r.face_id: r for r in active if r.face_id}
        out: dict[str, Target] = {}
        for fid in face_ids:
            rule = specific.get(fid, frame_wide)
            if rule is not None:
                out[fid] = Target(rule.expression, rule.face_id)
        for fid, rule in specific.items():
            out.setdefault(fid, Target(rule.expression, fid))
        if frame_wide is not None and not face_ids:
            out[''] = Target(frame_wide.expression)
        return out

    def to_json(self) -> dict:
        return {'source': self.source,
                'ranges': [{'start_s': r.start_s if math.isfinite(r.start_s) else None,
                            'end_s': r.end_s if math.isfinite(r.end_s) else None,
                            'expression': r.expression, 'face_id': r.face_id} for r in self.ranges]}


def _parse_row(path: Path, row_no: int, cells: list[str]) -> LabelRange:
    where = f'{path}: row {row_no}'
    if len(cells) not in (3, 4):
        raise LabelError(f'{where}: expected 3 or 4 columns ({",".join(COLUMNS)}), got {len(cells)}: '
                         f'{",".join(cells)!r}')
    values = []
    for name, cell in zip(COLUMNS[:2], cells[:2]):
        try:
            value = float(cell)
        except ValueError:
            raise LabelError(f'{where}: {name} {cell!r} is not a number') from None
        if not math.isfinite(value) or value < 0:
            raise LabelError(f'{where}: {name} {cell!r} must be a finite number >= 0')
        values.append(value)
    start, end = values
    if end <= start:
        raise LabelError(f'{where}: end_s {end} must be greater than start_s {start}')
    try:
        word = canonical(cells[2])
    except ValueError as exc:
        raise LabelError(f'{where}: {exc}') from None
    face_id = cells[3] if len(cells) == 4 else ''
    return LabelRange(start, end, word, face_id, row_no)
