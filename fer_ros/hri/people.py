"""Who each tracked face is: person ids that survive track loss, enrolled operators, and their baselines.

A track (a face id of the tracker) is given a **person id**:
- an enrolled person's id (``op1``, ``op2`` ...; stable across restarts, kept in the people file) when
  the track's embedding is within ``match_threshold`` of one of that person's stored embeddings;
- else the id of an anonymous person lost in the last ``return_window_s`` whose embedding is that close
  (the same person stepping out of view and back);
- else a new anonymous id (``p1``, ``p2`` ... for this run of the node).
A person is never given to two live tracks at once (the first keeps it; a second matching face, a twin
or a photo of them held up, stays anonymous and is reported).

Cost: embeddings are computed only for tracks that need them: a new track until it has
``identity_samples`` good samples (one per ``sample_interval_s``), a track whose match is uncertain
(its distance within ``uncertain_margin`` of the threshold) once per ``recheck_s``, and the face being
enrolled; at most ``max_embeddings_per_frame`` per frame (the rest wait for the next frames). A sample
is good when the face is at least ``id_min_face_px`` and its |yaw| at most ``id_max_yaw_deg``.

Baselines: a person's neutral baseline (fer_ros.hri.neutral_baseline) follows them: when a calibration
of their track completes it becomes the person's (saved with an enrolment); when they come back (or
start again after a restart, enrolled) it is installed on their new track.

Enrolment (``request_enrolment``): the named face's good, attending samples over ``duration_s``
(at least ``enrol_min_samples``, all within ``match_threshold`` of their mean: one person), refused when
the face already matches another enrolled person. The person's embeddings (at most
``max_embeddings_per_person``) and baseline are written to the people file; no image is kept anywhere.

Not thread-safe by itself: the Pipeline calls it under the node's lock.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fer_ros.core.validate import check_fields, check_range, field_limits, setting
from fer_ros.hri.people_store import EnrolledPerson, PeopleStoreError, StoreContents, load_store, now_iso, save_store
from fer_ros.util.vectors import unit_distance as distance
from fer_ros.util.vectors import unit_rows as normalise

if TYPE_CHECKING:  # annotations only: hri never imports perception
    from fer_ros.perception.embedding import FaceEmbedder

AUTHORITIES = ('anyone', 'enrolled')
ENROLLED_PREFIX, ANONYMOUS_PREFIX = 'op', 'p'


@dataclass(frozen=True)
class PeopleConfig:
    """Identity, re-identification and enrolment settings (see the module docstring).

    command_authority: 'anyone' (every attending face commands) | 'enrolled' (only enrolled people's
        attending faces command; STOP is taken from any face either way).
    match_threshold: largest embedding distance (unit vectors, 0..2) of the same person. bench-people, 852
        same-person pairs (other photo or video frame) and 64490 different-person pairs: EER 3.6 % at 0.417;
        at 0.40 a single pair is falsely rejected 9.7 % and falsely accepted 2.2 % of the time (a track
        averages three samples and an enrolled person keeps several views, which lowers both).
    """

    command_authority: str = setting('anyone', choices=AUTHORITIES)
    match_threshold: float = setting(0.40, low=0.0, high=2.0, low_open=True)
    uncertain_margin: float = setting(0.08, low=0.0, high=1.0)
    return_window_s: float = setting(60.0, low=0.0, high=86400.0)
    identity_samples: int = setting(3, low=1, high=50)
    sample_interval_s: float = setting(0.2, low=0.0, high=60.0)
    recheck_s: float = setting(5.0, low=0.1, high=3600.0)
    max_embeddings_per_frame: int = setting(2, low=1, high=64)
    id_min_face_px: float = setting(48.0, low=0.0, high=4096.0)
    id_max_yaw_deg: float = setting(45.0, low=0.0, high=90.0)
    enrol_duration_s: float = setting(4.0, low=0.5, high=60.0)
    enrol_min_samples: int = setting(5, low=1, high=1000)
    enrol_min_face_px: float = setting(64.0, low=0.0, high=4096.0)
    max_embeddings_per_person: int = setting(8, low=1, high=100)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class _Track:
    """A live track's identity state."""

    anonymous_id: str = ''
    person_id: str = ''
    distance: float = float('inf')        # of the current match (inf: anonymous, no match)
    samples: list[np.ndarray] = field(default_factory=list)
    last_sample: float = float('-inf')
    baseline_installed: bool = False


@dataclass
class _Anonymous:
    """An anonymous person: embedding (unit, mean of their samples) and baseline while recently lost."""

    embedding: np.ndarray | None
    baseline: np.ndarray | None = None
    baseline_samples: int = 0
    lost_at: float | None = None


@dataclass
class _Enrolment:
    name: str
    face_id: str
    duration_s: float
    start: float | None = None
    samples: list[np.ndarray] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    last_sample: float = float('-inf')


def _same_baseline(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


class People:
    """Person ids, enrolment and re-identification for the Pipeline.

    Args:
        config: PeopleConfig.
        embedder: the face embedding network, or None (no model: every track is its own anonymous person
            and enrolment is refused; ``status`` says so).
        store_path: the people file ('' = nothing persisted: enrolments last until the process ends).
        labels: the classifier's label order (baselines are stored in it).
        neutral: the pipeline's NeutralBaselines (baselines follow people through it).
    A people file that cannot be used is not overwritten: ``store_error`` says why and enrolment is refused.
    """

    def __init__(self, config: PeopleConfig, embedder: FaceEmbedder | None, store_path: str,
                 labels: tuple[str, ...], neutral) -> None:
        self.config = config
        self.embedder = embedder
        self.store_path = store_path
        self.labels = tuple(labels)
        self.neutral = neutral
        self.store_error = ''
        self.notes: list[str] = []
        self.last_enrolment = ''
        self.embeddings_computed = 0
        self._store = StoreContents(embedder.model_id if embedder else '', self.labels)
        if embedder is not None and store_path:
            try:
                self._store = load_store(store_path, embedder.model_id, embedder.spec.dim, self.labels)
                self.notes = list(self._store.notes)
            except PeopleStoreError as exc:
                self.store_error = str(exc)
        self._tracks: dict[str, _Track] = {}
        self._anonymous: dict[str, _Anonymous] = {}
        self._anonymous_numbers = itertools.count(1)
        self._enrolment: _Enrolment | None = None
        self.conflicts: list[str] = []      # this frame: faces that matched a person held by another face

    # --- queries ---------------------------------------------------------------------------------
    @property
    def enrolled(self) -> list[EnrolledPerson]:
        return list(self._store.people)

    def person(self, face_id: str) -> tuple[str, str]:
        """(person id, enrolled name or '') of a live track ('', '' when unknown)."""
        track = self._tracks.get(face_id)
        if track is None:
            return '', ''
        return track.person_id, self._name(track.person_id)

    def may_command(self, person_id: str) -> bool:
        """Whether this person's (attending) expressions may command under ``command_authority``."""
        return self.config.command_authority == 'anyone' or person_id.startswith(ENROLLED_PREFIX) and \
            self._find(person_id) is not None

    def in_view(self) -> dict[str, str]:
        """face id -> person id of the live tracks."""
        return {face_id: t.person_id for face_id, t in self._tracks.items()}

    def _name(self, person_id: str) -> str:
        person = self._find(person_id)
        return person.name if person is not None else ''

    def _find(self, key: str) -> EnrolledPerson | None:
        return next((p for p in self._store.people if key in (p.person_id, p.name)), None)

    # --- per frame -------------------------------------------------------------------------------
    def update(self, bgr: np.ndarray, faces, alive_face_ids, now: float) -> None:
        """One frame: identify the ``faces`` (FaceResult with box, landmarks, head_pose, attending) seen in
        it, advance an enrolment, end the tracks no longer alive, attach baselines. Sets each face's
        person_id and person_name. now: the command clock (seconds)."""
        alive = set(alive_face_ids)
        for face_id in [f for f in self._tracks if f not in alive]:
            self._end_track(face_id, now)
        for person_id in [p for p, a in self._anonymous.items()
                          if a.lost_at is not None and now - a.lost_at > self.config.return_window_s]:
            del self._anonymous[person_id]
        self.conflicts = []
        wanted = self._faces_to_embed(faces, now)
        if wanted and self.embedder is not None:
            vectors = self.embedder.embed(bgr, [f.box for f in wanted], [f.face_points if f.face_points is not None
                                                                         else f.landmarks for f in wanted])
            self.embeddings_computed += len(wanted)
            for face, vector in zip(wanted, vectors):
                self._add_sample(face, vector, now)
        for face in faces:
            track = self._tracks.setdefault(face.face_id, _Track())
            if not track.person_id:
                self._assign(face.face_id, track, None, float('inf'))
            self._follow_baseline(face.face_id, track)
            face.person_id, face.person_name = track.person_id, self._name(track.person_id)
        self._advance_enrolment(now)

    def _faces_to_embed(self, faces, now: float) -> list:
        cfg = self.config
        enrolment = self._enrolment
        chosen, waiting = [], []
        for face in faces:
            track = self._tracks.setdefault(face.face_id, _Track())
            if enrolment is not None and face.face_id == enrolment.face_id:
                if self._enrolment_quality(enrolment, face) and now - enrolment.last_sample >= 0.1:
                    chosen.append(face)
                continue
            if not self._good_sample(face) or now - track.last_sample < cfg.sample_interval_s:
                continue
            new = len(track.samples) < cfg.identity_samples
            uncertain = abs(track.distance - cfg.match_threshold) < cfg.uncertain_margin
            if new or (uncertain and now - track.last_sample >= cfg.recheck_s):
                waiting.append((len(track.samples), face))
        waiting.sort(key=lambda item: item[0])           # the least known tracks first
        room = max(0, cfg.max_embeddings_per_frame - len(chosen))
        return chosen + [face for _, face in waiting[:room]]

    def _good_sample(self, face) -> bool:
        pose = face.head_pose
        return min(face.box[2], face.box[3]) >= self.config.id_min_face_px and \
            (pose is None or abs(pose.yaw) <= self.config.id_max_yaw_deg)

    def _add_sample(self, face, vector: np.ndarray, now: float) -> None:
        track = self._tracks[face.face_id]
        enrolment = self._enrolment
        if enrolment is not None and enrolment.face_id == face.face_id and enrolment.start is not None:
            enrolment.samples.append(vector)
            enrolment.last_sample = now
        track.samples = (track.samples + [vector])[-self.config.identity_samples:]
        track.last_sample = now
        self._identify(face.face_id, track)

    def _identify(self, face_id: str, track: _Track) -> None:
        """Match the track's mean embedding against enrolled people and recently lost anonymous ones."""
        query = normalise(np.mean(track.samples, axis=0))
        held = {t.person_id for f, t in self._tracks.items() if f != face_id}
        best, best_d, blocked = None, float('inf'), None
        for person in self._store.people:
            d = float(distance(query, person.embeddings).min())
            if d < best_d:
                best, best_d = person.person_id, d
        for person_id, anonymous in self._anonymous.items():
            if anonymous.lost_at is not None and anonymous.embedding is not None:
                d = float(distance(query, anonymous.embedding[None, :])[0])
                if d < best_d:
                    best, best_d = person_id, d
        if best is not None and best_d <= self.config.match_threshold and best in held:
            blocked, best = best, None
            self.conflicts.append(f'{face_id} also matches {blocked} (d={best_d:.2f}), held by another face')
        if best is not None and best_d <= self.config.match_threshold:
            self._assign(face_id, track, best, best_d)
        else:
            self._assign(face_id, track, None, best_d)

    def _assign(self, face_id: str, track: _Track, person_id: str | None, d: float) -> None:
        track.distance = d
        if person_id is None:
            if not track.anonymous_id:
                track.anonymous_id = f'{ANONYMOUS_PREFIX}{next(self._anonymous_numbers)}'
            person_id = track.anonymous_id
        elif person_id in self._anonymous:              # a lost anonymous person is back
            anonymous = self._anonymous[person_id]
            anonymous.lost_at = None
            track.anonymous_id = person_id
        if person_id != track.person_id:
            track.person_id = person_id
            track.baseline_installed = False

    def _end_track(self, face_id: str, now: float) -> None:
        track = self._tracks.pop(face_id)
        if track.person_id.startswith(ANONYMOUS_PREFIX) and track.person_id == track.anonymous_id:
            anonymous = self._anonymous.setdefault(track.person_id, _Anonymous(None))
            if track.samples:
                anonymous.embedding = normalise(np.mean(track.samples, axis=0))
            anonymous.lost_at = now
            if anonymous.embedding is None:            # never embedded: cannot be recognised
                del self._anonymous[track.person_id]
        if self._enrolment is not None and self._enrolment.face_id == face_id:
            self.last_enrolment = f'enrolment of {self._enrolment.name!r} failed: face {face_id} left the view'
            self._enrolment = None

    # --- baselines ---------------------------------------------------------------------------------
    def _person_baseline(self, person_id: str) -> tuple[np.ndarray | None, int]:
        person = self._find(person_id) if person_id.startswith(ENROLLED_PREFIX) else None
        if person is not None:
            return person.baseline, person.baseline_samples
        anonymous = self._anonymous.get(person_id)
        return (anonymous.baseline, anonymous.baseline_samples) if anonymous else (None, 0)

    def _follow_baseline(self, face_id: str, track: _Track) -> None:
        """Install the person's baseline on a track that has none; adopt a track's new or cleared one."""
        current = self.neutral.baseline(face_id)
        stored, samples = self._person_baseline(track.person_id)
        if not track.baseline_installed:
            track.baseline_installed = True
            if stored is not None and current is None:
                self.neutral.install(face_id, stored, samples)
                return
        resting = None if current is None else current.resting
        if not _same_baseline(resting, stored):
            self._set_person_baseline(track.person_id, resting, 0 if current is None else current.samples)

    def _set_person_baseline(self, person_id: str, resting: np.ndarray | None, samples: int) -> None:
        person = self._find(person_id) if person_id.startswith(ENROLLED_PREFIX) else None
        if person is not None:
            person.baseline, person.baseline_samples = resting, samples
            self._save()
        else:
            anonymous = self._anonymous.setdefault(person_id, _Anonymous(None))
            anonymous.baseline, anonymous.baseline_samples = resting, samples

    # --- enrolment, forgetting -----------------------------------------------------------------------
    def request_enrolment(self, name: str, face_id: str, duration_s: float | None = None) -> str:
        """Start enrolling the live track ``face_id`` as ``name`` (over ``duration_s`` s, None or 0 = config).

        Returns a one-line description. Raises ValueError: no embedding model, an unusable people file,
        an empty name, an unknown face, a duration out of range.
        """
        name = name.strip()
        if self.embedder is None:
            raise ValueError('no face embedding model (run `make setup`; see docs/people.md)')
        if self.store_error:
            raise ValueError(f'enrolment refused: {self.store_error}')
        if not name:
            raise ValueError('a name is needed')
        if face_id not in self._tracks:
            raise ValueError(f'face {face_id!r} is not in view')
        duration = float(duration_s) if duration_s else self.config.enrol_duration_s
        limits = field_limits(PeopleConfig, 'enrol_duration_s')
        check_range('enrolment', 'duration_s', duration, limits.low, limits.high)
        self._enrolment = _Enrolment(name, face_id, duration)
        return f'enrolling face {face_id} as {name!r} for {duration:g} s: look at the camera'

    def _enrolment_quality(self, enrolment: _Enrolment, face) -> bool:
        reason = ''
        if not face.attending:
            reason = 'not attending'
        elif min(face.box[2], face.box[3]) < self.config.enrol_min_face_px:
            reason = f'face < {self.config.enrol_min_face_px:g} px'
        if reason:
            enrolment.rejected[reason] = enrolment.rejected.get(reason, 0) + 1
        return not reason

    def _advance_enrolment(self, now: float) -> None:
        enrolment = self._enrolment
        if enrolment is None:
            return
        if enrolment.start is None:
            enrolment.start = now
        if now - enrolment.start < enrolment.duration_s:
            return
        self._enrolment = None
        self.last_enrolment = self._finish_enrolment(enrolment)

    def _finish_enrolment(self, e: _Enrolment) -> str:
        cfg = self.config
        rejected = ', '.join(f'{n} frames {why}' for why, n in sorted(e.rejected.items()))
        if len(e.samples) < cfg.enrol_min_samples:
            return (f'enrolment of {e.name!r} failed: {len(e.samples)} good samples (< {cfg.enrol_min_samples})'
                    + (f'; rejected: {rejected}' if rejected else ''))
        samples = normalise(np.stack(e.samples))
        mean = normalise(samples.mean(axis=0))
        spread = float(distance(mean, samples).max())
        if spread > cfg.match_threshold:
            return (f'enrolment of {e.name!r} failed: the samples disagree (distance {spread:.2f} > '
                    f'{cfg.match_threshold:g}: more than one person?)')
        for other in self._store.people:
            d = float(distance(mean, other.embeddings).min())
            if other.name != e.name and d <= cfg.match_threshold:
                return (f'enrolment of {e.name!r} refused: the face matches enrolled {other.name!r} '
                        f'({other.person_id}, distance {d:.2f}); forget them first if this is right')
        keep = samples[np.linspace(0, len(samples) - 1, min(len(samples), cfg.max_embeddings_per_person)).astype(int)]
        person = self._find(e.name)
        if person is None:
            person = EnrolledPerson(f'{ENROLLED_PREFIX}{self._store.next_number}', e.name, keep, now_iso())
            self._store.next_number += 1
            self._store.people.append(person)
        else:
            person.embeddings, person.enrolled_at = keep, now_iso()
        track = self._tracks.get(e.face_id)
        if track is not None:
            baseline = self.neutral.baseline(e.face_id)
            if baseline is not None:
                person.baseline, person.baseline_samples = baseline.resting, baseline.samples
            self._assign(e.face_id, track, person.person_id, spread)
            track.baseline_installed = True
        saved = self._save()
        return (f'enrolled {e.name!r} as {person.person_id} from {len(samples)} samples ({len(keep)} kept)'
                + (f'; rejected: {rejected}' if rejected else '')
                + ('' if saved else f'; NOT SAVED: {self.notes[-1] if self.notes else self.store_error}'))

    def forget(self, key: str) -> list[str]:
        """Forget the enrolled person with this id or name (removed from the people file). Returns the
        removed person ids ([] when none matched). Their faces in view become anonymous."""
        person = self._find(key.strip()) if key.strip() else None
        if person is None:
            return []
        self._store.people.remove(person)
        for face_id, track in self._tracks.items():
            if track.person_id == person.person_id:
                self._assign(face_id, track, None, float('inf'))
        self._save()
        return [person.person_id]

    def _save(self) -> bool:
        if not self.store_path or self.store_error:
            return not self.store_error
        try:
            save_store(self.store_path, self._store)
            return True
        except OSError as exc:
            self.notes.append(f'could not write {self.store_path}: {exc}')
            return False

    # --- reporting ---------------------------------------------------------------------------------
    def status(self) -> dict[str, str]:
        """Diagnostics key/values."""
        e = self._enrolment
        values = {
            'people_store': self.store_error or (self.store_path or 'not persisted'),
            'people_enrolled': ' '.join(f'{p.person_id}={p.name}' for p in self._store.people) or 'none',
            'people_in_view': ' '.join(f'{f}={t.person_id}' for f, t in sorted(self._tracks.items())) or 'none',
            'people_enrolment': 'idle' if e is None else f'enrolling {e.face_id} as {e.name!r} '
                                f'({len(e.samples)} samples)',
            'people_enrolment_last': self.last_enrolment,
            'people_embeddings_computed': str(self.embeddings_computed),
            'command_authority': self.config.command_authority,
        }
        if self.embedder is None:
            values['people_store'] = 'no face embedding model: person ids do not survive track loss, no enrolment'
        if self.notes:
            values['people_notes'] = '; '.join(self.notes[-3:])
        if self.conflicts:
            values['people_conflicts'] = '; '.join(self.conflicts)
        return values
