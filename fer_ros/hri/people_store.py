"""The enrolled-people file: names, face embeddings and neutral baselines; never an image.

One JSON file (``people.json`` in the node's ``people_dir``), written atomically (a temporary file
beside it, flushed to disk, then renamed over it), so a crash or power loss leaves the old file or the
new one, never half of one:

    {"format": "fer_ros.people", "version": 1,
     "embedding_model": "face-api-recognition-128/b413e420d6840b27",   # EmbedderSpec.model_id
     "labels": ["angry", ...],          # the classifier's label order of the baselines below
     "next_number": 3,                  # enrolled ids are op1, op2, ... never reused
     "people": [{"person_id": "op1", "name": "alice", "enrolled_at": "2026-01-01T12:00:00Z",
                 "embeddings": [[128 floats], ...],        # unit vectors, a few per person
                 "baseline": {"resting": [K floats], "samples": 25} or null}]}

Refused with ``PeopleStoreError`` (the message names the file and what is wrong): unreadable, not JSON,
another format or a newer version, another embedding model (vectors of two networks are not
comparable: re-enrol, or point ``people_dir`` elsewhere), malformed entries. A baseline recorded
under other classifier labels is dropped on load (reported in ``StoreContents.notes``): the
embeddings stay valid.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

STORE_FORMAT = 'fer_ros.people'
STORE_VERSION = 1
STORE_FILE = 'people.json'


class PeopleStoreError(ValueError):
    """The people file cannot be used; the message names the file."""


@dataclass
class EnrolledPerson:
    """One enrolled person. embeddings: float32[M, D] unit vectors. baseline: float32[K] resting
    probabilities (the classifier's label order) or None."""

    person_id: str
    name: str
    embeddings: np.ndarray
    enrolled_at: str = ''
    baseline: np.ndarray | None = None
    baseline_samples: int = 0


@dataclass
class StoreContents:
    model_id: str
    labels: tuple[str, ...]
    people: list[EnrolledPerson] = field(default_factory=list)
    next_number: int = 1
    notes: list[str] = field(default_factory=list)      # what loading dropped (not errors)


def now_iso() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def load_store(path: str, model_id: str, dim: int, labels: tuple[str, ...]) -> StoreContents:
    """The people of ``path`` (an empty store when the file does not exist).

    Args:
        model_id / dim: the embedding network in use; the file must have been written with it.
        labels: the classifier's labels; baselines recorded under others are dropped (with a note).
    Raises:
        PeopleStoreError: see the module docstring.
    """
    if not os.path.exists(path):
        return StoreContents(model_id, tuple(labels))
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise PeopleStoreError(f'people file {path}: cannot read it ({exc})') from None
    except json.JSONDecodeError as exc:
        raise PeopleStoreError(f'people file {path}: corrupt, not JSON ({exc.msg} at line {exc.lineno} column '
                               f'{exc.colno}); fix or remove it (enrolments would be lost)') from None
    if not isinstance(data, dict) or data.get('format') != STORE_FORMAT:
        raise PeopleStoreError(f'people file {path}: not a {STORE_FORMAT} file')
    version = data.get('version')
    if version != STORE_VERSION:
        raise PeopleStoreError(f'people file {path}: version {version!r}; this fer_ros reads version {STORE_VERSION}')
    stored_model = data.get('embedding_model')
    if stored_model != model_id:
        raise PeopleStoreError(f'people file {path}: its embeddings come from model {stored_model!r}, this node '
                               f'uses {model_id!r}; their vectors are not comparable: enrol the people again '
                               f'with people_dir set to another folder, or remove the file')
    try:
        stored_labels = tuple(str(v) for v in data['labels'])
        contents = StoreContents(model_id, tuple(labels), next_number=int(data['next_number']))
        for i, entry in enumerate(data['people']):
            contents.people.append(_person(entry, dim, i))
    except (KeyError, TypeError, ValueError) as exc:
        raise PeopleStoreError(f'people file {path}: malformed ({exc})') from None
    ids = [p.person_id for p in contents.people]
    names = [p.name for p in contents.people]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        raise PeopleStoreError(f'people file {path}: malformed (a person id or name appears twice)')
    if stored_labels != tuple(labels):
        for person in contents.people:
            if person.baseline is not None:
                person.baseline, person.baseline_samples = None, 0
                contents.notes.append(f'{person.name}: neutral baseline dropped (recorded for labels '
                                      f'{list(stored_labels)}, the classifier has {list(labels)})')
    for person in contents.people:
        if person.baseline is not None and len(person.baseline) != len(labels):
            raise PeopleStoreError(f'people file {path}: malformed (baseline of {person.name!r} has '
                                   f'{len(person.baseline)} values for {len(labels)} labels)')
    return contents


def _person(entry: dict, dim: int, index: int) -> EnrolledPerson:
    """One 'people' entry (KeyError / TypeError / ValueError naming the entry when malformed)."""
    where = f'people[{index}]'
    person_id, name = str(entry['person_id']), str(entry['name'])
    if not person_id or not name:
        raise ValueError(f'{where}: empty person_id or name')
    vectors = np.asarray(entry['embeddings'], np.float32)
    if vectors.ndim != 2 or vectors.shape[0] < 1 or vectors.shape[1] != dim or not np.all(np.isfinite(vectors)):
        raise ValueError(f'{where} ({name}): embeddings must be a non-empty list of {dim} finite numbers each')
    baseline, samples = None, 0
    if entry.get('baseline') is not None:
        baseline = np.asarray(entry['baseline']['resting'], np.float32)
        samples = int(entry['baseline']['samples'])
        if baseline.ndim != 1 or not np.all(np.isfinite(baseline)) or not math.isclose(float(baseline.sum()), 1.0,
                                                                                        abs_tol=1e-3):
            raise ValueError(f'{where} ({name}): baseline.resting must be probabilities summing to 1')
    return EnrolledPerson(person_id, name, vectors, str(entry.get('enrolled_at', '')), baseline, samples)


def save_store(path: str, contents: StoreContents) -> None:
    """Write ``contents`` to ``path`` atomically (OSError when the folder cannot be written)."""
    people = [{'person_id': p.person_id, 'name': p.name, 'enrolled_at': p.enrolled_at,
               'embeddings': np.round(np.asarray(p.embeddings, np.float64), 6).tolist(),
               'baseline': None if p.baseline is None else
               {'resting': np.round(np.asarray(p.baseline, np.float64), 6).tolist(), 'samples': p.baseline_samples}}
              for p in contents.people]
    payload = json.dumps({'format': STORE_FORMAT, 'version': STORE_VERSION, 'embedding_model': contents.model_id,
                          'labels': list(contents.labels), 'next_number': contents.next_number, 'people': people},
                         indent=1).encode('utf-8')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())       # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:                               # and the rename itself survives a power loss
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
