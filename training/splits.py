"""Train / validation / test splits: official, stratified random (the paper's 70/30), by subject.

Random splits of CK+ and JAFFE put frames (CK+) or poses (JAFFE) of the same person on both sides
and inflate accuracy; ``subject`` mode keeps every person on one side. The split used is recorded
in the checkpoint, the ONNX metadata and the results, so numbers are never reported without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.config import SplitConfig
from training.datasets import FaceSet


@dataclass
class Split:
    """Index arrays into a FaceSet. val may be empty. info: JSON-able description (mode, seed, sizes,
    test subjects for subject mode)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)


def _stratified(labels: np.ndarray, idx: np.ndarray, fraction: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, picked) with ``fraction`` of every class in picked (rounded)."""
    picked = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        members = members[rng.permutation(len(members))]
        n = int(round(fraction * len(members)))
        if len(members) >= 2:  # keep at least one of each class on each side
            n = min(max(n, 1), len(members) - 1)
        picked.append(members[:n])
    chosen = np.sort(np.concatenate(picked)) if picked else np.array([], np.int64)
    rest = np.setdiff1d(idx, chosen)
    return rest, chosen


def _by_subject(subjects: np.ndarray, idx: np.ndarray, fraction: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Whole subjects (random order) go to the picked side until ``fraction`` of ``idx`` is reached."""
    names = np.unique(subjects[idx])
    if len(names) < 2:
        raise ValueError(f'split.mode=subject needs at least 2 subjects, found {len(names)}')
    order = names[rng.permutation(len(names))]
    target = fraction * len(idx)
    chosen: list[str] = []
    count = 0
    for name in order[:-1]:  # the last subject always stays on the other side
        if count >= target:
            break
        chosen.append(str(name))
        count += int(np.sum(subjects[idx] == name))
    mask = np.isin(subjects[idx], chosen)
    return idx[~mask], idx[mask], sorted(chosen)


def make_split(faces: FaceSet, cfg: SplitConfig) -> Split:
    """Split ``faces`` as ``cfg`` says.

    official: the dataset's usage tags (FER2013 Training/PublicTest/PrivateTest; folder train/val/
        test dirs); val_fraction then only applies when the dataset has no val part.
    random: stratified by class, ``test_fraction`` to test, then ``val_fraction`` of the rest to val.
    subject: whole subjects to test until ``test_fraction`` of the images, then to val likewise.
    Raises:
        ValueError: official mode without usage tags, subject mode without subject ids, or an
            empty train or test side.
    """
    rng = np.random.default_rng(cfg.seed)
    n = len(faces)
    every = np.arange(n)
    info: dict = {'mode': cfg.mode, 'seed': cfg.seed, 'test_fraction': cfg.test_fraction,
                  'val_fraction': cfg.val_fraction}
    if cfg.mode == 'official':
        if faces.usage is None:
            raise ValueError(f'split.mode=official: {faces.name} has no official split (FER2013 Usage '
                             'column or train/val/test folders); use split.mode=random or subject')
        usage = np.asarray(faces.usage)
        train, val, test = every[usage == 'train'], every[usage == 'val'], every[usage == 'test']
        if len(val) == 0 and cfg.val_fraction > 0:
            train, val = _stratified(faces.labels, train, cfg.val_fraction, rng)
        info['test_fraction'] = round(len(test) / n, 4)
        if faces.name == 'fer2013':
            info['note'] = 'train=Training, val=PublicTest, test=PrivateTest'
    elif cfg.mode == 'random':
        rest, test = _stratified(faces.labels, every, cfg.test_fraction, rng)
        train, val = (_stratified(faces.labels, rest, cfg.val_fraction, rng) if cfg.val_fraction > 0
                      else (rest, np.array([], np.int64)))
        if faces.subjects is not None:
            info['warning'] = ('random split of a dataset with repeated subjects: the same people are '
                               'in train and test, accuracy is optimistic (use split.mode=subject)')
    else:
        if faces.subjects is None:
            raise ValueError(f'split.mode=subject: {faces.name} has no subject ids (CK+ and JAFFE have; '
                             'for folder data set data.subject_pattern)')
        subjects = np.asarray(faces.subjects)
        rest, test, test_subjects = _by_subject(subjects, every, cfg.test_fraction, rng)
        val_subjects: list[str] = []
        if cfg.val_fraction > 0:
            train, val, val_subjects = _by_subject(subjects, rest, cfg.val_fraction, rng)
        else:
            train, val = rest, np.array([], np.int64)
        info['test_subjects'] = test_subjects
        info['val_subjects'] = val_subjects
        info['num_subjects'] = int(len(np.unique(subjects)))
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f'split.mode={cfg.mode} left {len(train)} training and {len(test)} test '
                         f'images of {n}; the dataset is too small or the fractions too extreme')
    info.update(train=int(len(train)), val=int(len(val)), test=int(len(test)))
    return Split(train=np.asarray(train, np.int64), val=np.asarray(val, np.int64),
                 test=np.asarray(test, np.int64), info=info)


def describe(split: Split) -> str:
    """One line for logs and reports, e.g. 'random 70/30 (seed 0): 700 train, 0 val, 300 test'."""
    i = split.info
    if i['mode'] == 'random':
        head = f"random {round(100 * (1 - i['test_fraction']))}/{round(100 * i['test_fraction'])}"
    elif i['mode'] == 'subject':
        head = f"subject-independent ({len(i['test_subjects'])} of {i['num_subjects']} subjects in test)"
    else:
        head = 'official' + (f" ({i['note']})" if 'note' in i else '')
    return f"{head}, seed {i['seed']}: {i['train']} train, {i['val']} val, {i['test']} test"
