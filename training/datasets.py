"""Dataset parsers: FER2013 csv, CK+ (raw or folder export), JAFFE, any folder-per-class set.

Every parser returns a :class:`FaceSet`: all images decoded, cropped, resized to the model input
and converted to its channel count up front, so bad data fails before training starts. Bad data is
never skipped: every malformed row, out-of-range label and unreadable image is collected and one
:class:`DatasetError` lists them (file and row). The only images dropped on purpose are labels with
no class here (``data.ignore_labels``, by default CK+'s 'contempt'); they are counted and printed.

Labels are indices into ``fer_ros.core.labels.EXPRESSIONS`` (FER2013 order), mapped from each
dataset's own names with ``labels.canonical``.
"""
from __future__ import annotations

import csv
import glob
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from fer_ros.core.labels import EXPRESSIONS, canonical
from fer_ros.io.files import IMAGE_SUFFIXES, read_image
from training.config import Config

FER2013_USAGE = {'training': 'train', 'publictest': 'val', 'privatetest': 'test'}
# CK+ Emotion/*.txt codes (Lucey et al. 2010). 2 = contempt has no class among the seven.
CKPLUS_CODES = {0: 'neutral', 1: 'anger', 2: 'contempt', 3: 'disgust', 4: 'fear', 5: 'happy',
                6: 'sadness', 7: 'surprise'}
# folder names accepted as official split folders, and the split they mean
SPLIT_DIRS = {'train': 'train', 'training': 'train', 'val': 'val', 'valid': 'val', 'validation': 'val',
              'publictest': 'val', 'test': 'test', 'testing': 'test', 'privatetest': 'test'}
JAFFE_NAME = re.compile(r'^([A-Za-z0-9]{2,})\.([A-Za-z]{2})(\d*)\.(\d+)\.[A-Za-z]+$')
MAX_LISTED_ERRORS = 20


class DatasetError(ValueError):
    """Bad input data; the message names every bad file (and row) found."""


@dataclass
class FaceSet:
    """A decoded dataset, ready for splitting and augmentation.

    images: uint8[N, S, S, C] (C = model in_channels; RGB order for C = 3).
    labels: int64[N], indices into EXPRESSIONS.
    boxes: float32[N, 4] face box (x0, y0, x1, y1) as fractions of the image (erasing anchors).
    sources: N strings naming where each image came from ('file:row' or a path).
    subjects: N subject ids, or None when the dataset has none.
    usage: N official split tags ('train' | 'val' | 'test'), or None.
    dropped: label name -> images dropped because the label has no class (ignore_labels).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    sources: list[str]
    subjects: list[str] | None = None
    usage: list[str] | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(EXPRESSIONS))
        return {name: int(c) for name, c in zip(EXPRESSIONS, counts)}


class _Errors:
    """Collects problems so one run reports all of them, not just the first."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, what: str) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_LISTED_ERRORS]
        more = len(self.items) - len(shown)
        text = '\n  '.join(shown) + (f'\n  ... and {more} more' if more else '')
        raise DatasetError(f'{what}: {len(self.items)} bad item(s), nothing was skipped; fix them:\n  {text}')


def _label_index(name: str) -> int:
    return EXPRESSIONS.index(canonical(name))


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='img', leave=False, mininterval=1.0)


# ---------------------------------------------------------------- image decoding and cropping

class ImageConverter:
    """Full image (BGR) -> model-ready crop uint8[S, S, C] and its face box, as configured.

    crop 'none' resizes the whole image, 'center' its central square; both report ``face_box``
    from the config. 'detect' finds the most confident face with the fer_ros detector and cuts the
    same square window the node cuts at run time (fer_ros.perception.preprocess.crop_square), so training
    and inference crops agree; the face box is where the detection lies inside that window.
    """

    def __init__(self, cfg: Config) -> None:
        self.size = cfg.data.input_size
        self.channels = cfg.model.in_channels
        self.crop = cfg.data.crop
        self.margin = cfg.data.crop_margin
        self.face_box = np.asarray(cfg.data.face_box, np.float32)
        self._detector = None

    def _detect(self, bgr: np.ndarray):
        if self._detector is None:
            from fer_ros.backends import create_face_detector
            from fer_ros.perception.detectors import DetectorConfig
            self._detector = create_face_detector(DetectorConfig(min_face_size=16, confidence_threshold=0.5,
                                                                 max_faces=1))
        found = self._detector.detect(bgr)
        return found[0].box if found else None

    def from_bgr(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raises ValueError('no face found') in detect mode when the detector finds nothing."""
        box = self.face_box
        if self.crop == 'center':
            h, w = bgr.shape[:2]
            side = min(h, w)
            y0, x0 = (h - side) // 2, (w - side) // 2
            bgr = bgr[y0:y0 + side, x0:x0 + side]
        elif self.crop == 'detect':
            from fer_ros.perception.preprocess import crop_square, square_box
            face = self._detect(bgr)
            if face is None:
                raise ValueError('no face found (data.crop=detect); crop it by hand or use data.crop=center')
            x0, y0, side = square_box(face, self.margin)
            fx, fy, fw, fh = face
            box = np.clip(np.array([(fx - x0) / side, (fy - y0) / side, (fx + fw - x0) / side,
                                    (fy + fh - y0) / side], np.float32), 0.0, 1.0)
            bgr = crop_square(bgr, face, self.margin)
        return self._finish(bgr), box

    def from_gray(self, gray: np.ndarray) -> np.ndarray:
        """uint8[H, W] already a face crop -> uint8[S, S, C] (no cropping)."""
        img = self._resize(gray)
        if self.channels == 3:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return img.reshape(self.size, self.size, self.channels)

    def _resize(self, img: np.ndarray) -> np.ndarray:
        if img.shape[0] == self.size and img.shape[1] == self.size:
            return img
        shrinking = img.shape[0] >= self.size and img.shape[1] >= self.size
        return cv2.resize(img, (self.size, self.size),
                          interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def _finish(self, bgr: np.ndarray) -> np.ndarray:
        img = self._resize(bgr)
        code = cv2.COLOR_BGR2RGB if self.channels == 3 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(img, code).reshape(self.size, self.size, self.channels)


def _load_files(name: str, items: list[tuple[str, int, str | None, str | None]], cfg: Config,
                errors: _Errors, progress: bool) -> FaceSet:
    """Decode (path, label, subject, usage) items into a FaceSet; failures go to ``errors``."""
    conv = ImageConverter(cfg)
    s, c = cfg.data.input_size, cfg.model.in_channels
    images = np.zeros((len(items), s, s, c), np.uint8)
    boxes = np.zeros((len(items), 4), np.float32)
    for i, (path, _label, _subject, _usage) in enumerate(_progress(items, f'loading {name}', progress)):
        try:
            bgr = read_image(path)
        except ValueError as exc:
            errors.add(f'{path}: unreadable image ({exc})')
            continue
        try:
            images[i], boxes[i] = conv.from_bgr(bgr)
        except ValueError as exc:
            errors.add(f'{path}: {exc}')
    errors.raise_if_any(f'{name} at {cfg.data.path}')
    subjects = [it[2] for it in items]
    usage = [it[3] for it in items]
    return FaceSet(name=name, images=images, labels=np.array([it[1] for it in items], np.int64),
                   boxes=boxes, sources=[it[0] for it in items],
                   subjects=subjects if all(x is not None for x in subjects) and items else None,
                   usage=usage if all(x is not None for x in usage) and items else None)


# ---------------------------------------------------------------- FER2013

def load_fer2013(cfg: Config, progress: bool = True) -> FaceSet:
    """FER2013 csv: columns ``emotion`` (0..6, FER2013 order = EXPRESSIONS), ``pixels`` (48*48
    space-separated 0..255 gray values) and optionally ``Usage`` (Training / PublicTest /
    PrivateTest). Header names are matched without case or surrounding spaces (the Kaggle
    icml_face_data.csv writes ' Usage', ' pixels')."""
    path = cfg.data.path
    if not os.path.isfile(path):
        raise FileNotFoundError(f'FER2013 csv not found: {path}')
    errors = _Errors()
    conv = ImageConverter(cfg)
    pixels_list: list[np.ndarray] = []
    labels: list[int] = []
    usage: list[str] = []
    sources: list[str] = []
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise DatasetError(f'{path}: empty file (expected a header emotion,pixels[,Usage])') from None
        missing = [c for c in ('emotion', 'pixels') if c not in header]
        if missing:
            raise DatasetError(f'{path}:1: header {header} lacks column(s) {missing}')
        i_emo, i_pix = header.index('emotion'), header.index('pixels')
        i_use = header.index('usage') if 'usage' in header else None
        side = None
        for row in _progress(reader, 'reading FER2013', progress):
            line = reader.line_num
            where = f'{path}:{line}'
            if not row or all(not c.strip() for c in row):
                continue  # blank line, not a sample
            if len(row) != len(header):
                errors.add(f'{where}: {len(row)} fields, header has {len(header)}')
                continue
            try:
                label = int(row[i_emo].strip())
            except ValueError:
                errors.add(f'{where}: emotion {row[i_emo]!r} is not an integer')
                continue
            if not 0 <= label < len(EXPRESSIONS):
                errors.add(f'{where}: emotion {label} out of range 0..{len(EXPRESSIONS) - 1}')
                continue
            with warnings.catch_warnings():
                warnings.simplefilter('error')  # numpy warns (not raises) on a bad token
                try:
                    values = np.fromstring(row[i_pix], dtype=np.int64, sep=' ')
                except (ValueError, DeprecationWarning):
                    errors.add(f'{where}: pixels field has a non-integer value')
                    continue
            n = int(np.sqrt(values.size))
            if values.size == 0 or n * n != values.size or (side is not None and n != side):
                want = f'{side * side}' if side else 'a square number of'
                errors.add(f'{where}: pixels field has {values.size} values, expected {want}')
                continue
            side = n
            if values.min() < 0 or values.max() > 255:
                errors.add(f'{where}: pixel value {int(values.min() if values.min() < 0 else values.max())}'
                           ' out of range 0..255')
                continue
            tag = 'train'
            if i_use is not None:
                key = row[i_use].strip().lower()
                if key not in FER2013_USAGE:
                    errors.add(f'{where}: Usage {row[i_use]!r} is not Training, PublicTest or PrivateTest')
                    continue
                tag = FER2013_USAGE[key]
            pixels_list.append(values.astype(np.uint8).reshape(n, n))
            labels.append(label)
            usage.append(tag)
            sources.append(where)
    errors.raise_if_any(f'FER2013 csv {path}')
    if not labels:
        raise DatasetError(f'{path}: no samples')
    images = np.stack([conv.from_gray(p) for p in pixels_list])
    boxes = np.tile(np.asarray(cfg.data.face_box, np.float32), (len(labels), 1))
    return FaceSet(name='fer2013', images=images, labels=np.array(labels, np.int64), boxes=boxes,
                   sources=sources, subjects=None, usage=usage if i_use is not None else None)


# ---------------------------------------------------------------- folder-per-class

def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _list_class_dirs(root: str) -> list[tuple[str, str | None]]:
    """(class dir, usage) pairs: root/<label>/ or root/<split>/<label>/."""
    subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if subdirs and all(d.lower() in SPLIT_DIRS for d in subdirs):
        return [(os.path.join(root, s, d), SPLIT_DIRS[s.lower()]) for s in subdirs
                for d in sorted(os.listdir(os.path.join(root, s))) if os.path.isdir(os.path.join(root, s, d))]
    return [(os.path.join(root, d), None) for d in subdirs]


def _folder_label(dirname: str) -> int:
    """Class folder name -> EXPRESSIONS index: a label word (any known spelling) or a FER2013 index."""
    name = os.path.basename(dirname)
    if name.isdigit() and int(name) < len(EXPRESSIONS):
        return int(name)
    return _label_index(name)


def load_folder(cfg: Config, progress: bool = True, name: str = 'folder',
                subject_pattern: str | None = None) -> FaceSet:
    """root/<label>/*.png (or root/<train|val|test>/<label>/*): label folders named with any known
    spelling (angry, anger, fear, ...) or a FER2013 index 0..6. ``subject_pattern`` (regex, first
    group) extracts subject ids from file names for subject-independent splits."""
    root = cfg.data.path
    if not os.path.isdir(root):
        raise FileNotFoundError(f'{name} folder not found: {root}')
    pattern = subject_pattern if subject_pattern is not None else cfg.data.subject_pattern
    regex = re.compile(pattern) if pattern else None
    ignore = {s.lower() for s in cfg.data.ignore_labels}
    errors = _Errors()
    items: list[tuple[str, int, str | None, str | None]] = []
    dropped: dict[str, int] = {}
    other_files = 0
    class_dirs = _list_class_dirs(root)
    if not class_dirs:
        raise DatasetError(f'{root}: no class folders (expected {root}/<label>/<images>)')
    for class_dir, usage in class_dirs:
        files = sorted(f for f in os.listdir(class_dir) if os.path.isfile(os.path.join(class_dir, f)))
        images = [f for f in files if _is_image(f)]
        other_files += len(files) - len(images)
        base = os.path.basename(class_dir)
        if base.lower() in ignore:
            dropped[base.lower()] = dropped.get(base.lower(), 0) + len(images)
            continue
        try:
            label = _folder_label(class_dir)
        except ValueError:
            errors.add(f'{class_dir}: folder name {base!r} is not an expression label '
                       f'(known: {", ".join(EXPRESSIONS)} and common spellings; add it to '
                       'data.ignore_labels to drop it)')
            continue
        for fname in images:
            subject = None
            if regex is not None:
                m = regex.search(fname)
                if not m:
                    errors.add(f'{os.path.join(class_dir, fname)}: file name does not match '
                               f'data.subject_pattern {pattern!r}')
                    continue
                subject = m.group(1) if m.groups() else m.group(0)
            items.append((os.path.join(class_dir, fname), label, subject, usage))
    errors.raise_if_any(f'{name} dataset {root}')
    if not items:
        raise DatasetError(f'{root}: no images found in the class folders')
    if other_files:
        print(f'[data] {root}: {other_files} non-image file(s) in class folders ignored')
    faces = _load_files(name, items, cfg, errors, progress)
    faces.dropped = dropped
    if regex is None:
        faces.subjects = None
    return faces


# ---------------------------------------------------------------- CK+

def _find_dir(root: str, names: tuple[str, ...], depth: int = 2) -> str | None:
    for dirpath, dirnames, _files in os.walk(root):
        if dirpath[len(root):].count(os.sep) >= depth:
            dirnames[:] = []
        for d in dirnames:
            if d.lower() in names:
                return os.path.join(dirpath, d)
    return None


def load_ckplus(cfg: Config, progress: bool = True) -> FaceSet:
    """CK+ in either of its usual forms.

    Raw release: ``cohn-kanade-images/S005/001/S005_001_00000011.png`` frames and
    ``Emotion/S005/001/S005_001_00000011_emotion.txt`` labels (one number, CKPLUS_CODES). The last
    ``data.ckplus_peak_frames`` frames up to the labelled one carry the label (the expression's
    apex); with ``data.ckplus_neutral_first`` the sequence's first frame is a 'neutral' sample.
    Folder export (e.g. the 48x48 'CK+48' set): ``<label>/S010_004_00000017.png``; the subject is
    the file name's 'Sxxx' prefix unless data.subject_pattern says otherwise.
    Code 2 / folder 'contempt' has no class here: dropped with a printed count.
    """
    root = cfg.data.path
    if not os.path.isdir(root):
        raise FileNotFoundError(f'CK+ folder not found: {root}')
    images_dir = _find_dir(root, ('cohn-kanade-images',))
    emotion_dir = _find_dir(root, ('emotion',))
    if images_dir is None or emotion_dir is None:
        return load_folder(cfg, progress, name='ckplus',
                           subject_pattern=cfg.data.subject_pattern or r'^(S\d+)_')
    errors = _Errors()
    ignore = {s.lower() for s in cfg.data.ignore_labels}
    items: list[tuple[str, int, str | None, str | None]] = []
    dropped: dict[str, int] = {}
    label_files = sorted(glob.glob(os.path.join(emotion_dir, '**', '*_emotion.txt'), recursive=True))
    if not label_files:
        raise DatasetError(f'{emotion_dir}: no *_emotion.txt label files')
    for lf in label_files:
        m = re.match(r'^(S\d+)_(\d+)_(\d+)_emotion\.txt$', os.path.basename(lf))
        if not m:
            errors.add(f'{lf}: name is not S<subject>_<sequence>_<frame>_emotion.txt')
            continue
        subject, seq, frame = m.group(1), m.group(2), int(m.group(3))
        try:
            with open(lf, encoding='utf-8') as f:
                text = f.read().strip()
            value = float(text)
        except (OSError, UnicodeDecodeError, ValueError):
            errors.add(f'{lf}: expected one number (an emotion code 0..7)')
            continue
        code = int(value)
        if value != code or code not in CKPLUS_CODES:
            errors.add(f'{lf}: emotion code {text!r} is not one of 0..7')
            continue
        word = CKPLUS_CODES[code]
        seq_dir = os.path.join(images_dir, subject, seq)
        frames = sorted(f for f in glob.glob(os.path.join(seq_dir, '*')) if _is_image(f))
        numbered = []
        for fpath in frames:
            fm = re.search(r'_(\d+)\.[^.]+$', os.path.basename(fpath))
            if fm and int(fm.group(1)) <= frame:
                numbered.append(fpath)
        if not numbered:
            errors.add(f'{lf}: no frames up to {frame} in {seq_dir}')
            continue
        peak = numbered[-cfg.data.ckplus_peak_frames:]
        if word in ignore:
            dropped[word] = dropped.get(word, 0) + len(peak)
        else:
            label = _label_index(word)
            items += [(p, label, subject, None) for p in peak]
        if cfg.data.ckplus_neutral_first and numbered[0] not in peak:
            items.append((numbered[0], EXPRESSIONS.index('neutral'), subject, None))
    errors.raise_if_any(f'CK+ labels in {emotion_dir}')
    if not items:
        raise DatasetError(f'{root}: no usable CK+ samples')
    faces = _load_files('ckplus', items, cfg, errors, progress)
    faces.dropped = dropped
    return faces


# ---------------------------------------------------------------- JAFFE

def load_jaffe(cfg: Config, progress: bool = True) -> FaceSet:
    """JAFFE: images named ``<subject>.<expression code><n>.<id>.tiff`` (e.g. KA.AN1.39.tiff;
    codes AN DI FE HA NE SA SU), anywhere under data.path. Non-image files (README) are ignored;
    an image file whose name does not follow the pattern is an error."""
    root = cfg.data.path
    if not os.path.isdir(root):
        raise FileNotFoundError(f'JAFFE folder not found: {root}')
    errors = _Errors()
    items: list[tuple[str, int, str | None, str | None]] = []
    for path in sorted(glob.glob(os.path.join(root, '**', '*'), recursive=True)):
        if not os.path.isfile(path) or not _is_image(path):
            continue
        name = os.path.basename(path)
        m = JAFFE_NAME.match(name)
        if not m:
            errors.add(f'{path}: name is not <subject>.<code><n>.<id>.<ext> (e.g. KA.AN1.39.tiff)')
            continue
        try:
            label = _label_index(m.group(2))
        except ValueError:
            errors.add(f'{path}: expression code {m.group(2)!r} is not one of AN DI FE HA NE SA SU')
            continue
        items.append((path, label, m.group(1).upper(), None))
    errors.raise_if_any(f'JAFFE dataset {root}')
    if not items:
        raise DatasetError(f'{root}: no JAFFE images (e.g. KA.AN1.39.tiff) found')
    return _load_files('jaffe', items, cfg, errors, progress)


# ---------------------------------------------------------------- synthetic

def load_synthetic(cfg: Config, progress: bool = True) -> FaceSet:
    """training.synthetic patterns (no files): data.synthetic_per_class images per class."""
    from training.synthetic import make_patterns

    gray, labels = make_patterns(cfg.data.synthetic_per_class, cfg.data.input_size, seed=cfg.split.seed)
    conv = ImageConverter(cfg)
    images = np.stack([conv.from_gray(g) for g in gray])
    boxes = np.tile(np.asarray(cfg.data.face_box, np.float32), (len(labels), 1))
    return FaceSet(name='synthetic', images=images, labels=labels, boxes=boxes,
                   sources=[f'synthetic:{i}' for i in range(len(labels))])


LOADERS: dict[str, Callable[[Config, bool], FaceSet]] = {
    'fer2013': load_fer2013, 'ckplus': load_ckplus, 'jaffe': load_jaffe, 'folder': load_folder,
    'synthetic': load_synthetic,
}


def load_dataset(cfg: Config, progress: bool = True) -> FaceSet:
    """Parse ``cfg.data`` into a FaceSet; prints what was dropped (ignore_labels), never silently.

    Raises:
        FileNotFoundError: data.path does not exist.
        DatasetError: malformed rows, labels out of range, unreadable images (all listed).
    """
    faces = LOADERS[cfg.data.format](cfg, progress)
    for label, count in sorted(faces.dropped.items()):
        print(f'[data] {faces.name}: dropped {count} image(s) labelled {label!r} (no class among '
              f'{", ".join(EXPRESSIONS)}; data.ignore_labels)')
    return faces
