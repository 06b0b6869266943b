"""People: the store file (atomic, versioned, refused when corrupt or from another model), and identity on the
real networks and photos: a person who leaves and returns keeps their person id and baseline, enrolment,
command authority, the enrolment surviving a restart (a new pipeline reading the same file)."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from fer_ros.backends import create_pipeline
from fer_ros.core.labels import EXPRESSIONS
from fer_ros.hri.people import PeopleConfig
from fer_ros.hri.people_store import (
    STORE_FORMAT,
    EnrolledPerson,
    PeopleStoreError,
    StoreContents,
    load_store,
    save_store,
)
from fer_ros.pipeline import PipelineConfig
from fer_ros.sample_frames import FACE_SOURCES, background, paste_face
from fer_ros.util.paths import default_embedder_model_path, default_landmark_model_path

MODEL = 'face-api-recognition-128/test'
LABELS = tuple(EXPRESSIONS)


def person(name='alice', person_id='op1', baseline=True) -> EnrolledPerson:
    rng = np.random.default_rng(len(name))
    vectors = rng.normal(size=(3, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    resting = np.full(len(LABELS), 1 / len(LABELS), np.float32) if baseline else None
    return EnrolledPerson(person_id, name, vectors, '2026-01-01T00:00:00Z', resting, 12 if baseline else 0)


def test_store_round_trip_is_atomic_and_holds_no_image(tmp_path):
    path = str(tmp_path / 'people' / 'people.json')
    assert load_store(path, MODEL, 128, LABELS).people == []          # no file yet: nobody enrolled
    save_store(path, StoreContents(MODEL, LABELS, [person(), person('bob', 'op2', baseline=False)], next_number=3))
    assert os.listdir(tmp_path / 'people') == ['people.json']        # the temporary file is gone
    back = load_store(path, MODEL, 128, LABELS)
    assert [p.name for p in back.people] == ['alice', 'bob'] and back.next_number == 3
    assert np.allclose(back.people[0].embeddings, person().embeddings, atol=1e-6)
    assert back.people[0].baseline is not None and back.people[1].baseline is None
    data = json.loads((tmp_path / 'people' / 'people.json').read_text())
    assert data['format'] == STORE_FORMAT and data['version'] == 1 and data['embedding_model'] == MODEL
    assert set(data['people'][0]) == {'person_id', 'name', 'enrolled_at', 'embeddings', 'baseline'}


@pytest.mark.parametrize('mutate,needle', [
    (lambda text: text[: len(text) // 2], 'corrupt, not JSON'),
    (lambda text: text.replace('"version": 1', '"version": 7'), 'version 7'),
    (lambda text: text.replace(MODEL, 'another-network/123'), "model 'another-network/123'"),
    (lambda text: text.replace(STORE_FORMAT, 'something.else'), 'not a fer_ros.people file'),
    (lambda text: text.replace('"name": "bob"', '"name": "alice"'), 'appears twice'),
])
def test_unusable_store_is_refused_naming_the_file(tmp_path, mutate, needle):
    path = tmp_path / 'people.json'
    save_store(str(path), StoreContents(MODEL, LABELS, [person(), person('bob', 'op2')], next_number=3))
    path.write_text(mutate(path.read_text()))
    with pytest.raises(PeopleStoreError, match=needle) as err:
        load_store(str(path), MODEL, 128, LABELS)
    assert str(path) in str(err.value)


def test_baselines_of_other_labels_are_dropped_not_refused(tmp_path):
    path = str(tmp_path / 'people.json')
    save_store(path, StoreContents(MODEL, LABELS, [person()], next_number=2))
    other = tuple(reversed(LABELS))
    back = load_store(path, MODEL, 128, other)
    assert back.people[0].baseline is None and 'baseline dropped' in back.notes[0]
    assert len(back.people[0].embeddings) == 3                        # the embeddings stay valid


# --- identity on the real networks -------------------------------------------------------------------

@pytest.fixture(scope='module')
def models():
    try:
        default_embedder_model_path()
        default_landmark_model_path()
    except FileNotFoundError as exc:
        pytest.skip(f'face-api models not converted ({exc}); run `make setup`')


def frame_with(*faces) -> np.ndarray:
    """A 640x480 frame with the given repository faces: (source index, centre x, mirrored)."""
    frame = background((640, 480)).copy()
    for index, x, mirror in faces:
        paste_face(frame, FACE_SOURCES[index], (x, 230), 170, mirror=mirror)
    return frame


ASTRONAUT, CAMERAMAN = 0, 1


def run(pipeline, frame, start: float, seconds: float, rate: float = 10.0):
    """Process ``frame`` for ``seconds`` from ``start`` (stamps); returns (last result, end stamp)."""
    result, stamp = None, start
    for i in range(max(1, int(seconds * rate))):
        stamp = start + i / rate
        result = pipeline.process(frame, stamp)
    return result, stamp + 1 / rate


def faces_by_source(result) -> dict[str, object]:
    """{'left': face, 'right': face} by the face's x position."""
    return {('left' if f.box[0] < 320 else 'right'): f for f in result.faces}


def test_a_person_who_leaves_and_returns_keeps_person_id_and_baseline(models):
    pipeline = create_pipeline(PipelineConfig(people=PeopleConfig(return_window_s=30.0)))
    astronaut = frame_with((ASTRONAUT, 200, False))
    result, t = run(pipeline, astronaut, 0.0, 1.5)
    (face,) = result.faces
    first_face_id, person_id = face.face_id, face.person_id
    assert person_id.startswith('p')
    pipeline.neutral.request(face.face_id, 1.0)                      # calibrate her resting face
    result, t = run(pipeline, astronaut, t, 1.5)
    resting = pipeline.neutral.baseline(first_face_id).resting
    empty = background((640, 480)).copy()
    result, t = run(pipeline, empty, t, 3.0)                          # gone longer than the tracker keeps her
    assert result.faces == [] and first_face_id not in pipeline.visible_face_ids()
    result, t = run(pipeline, astronaut, t, 1.5)                      # back within the return window
    (back,) = result.faces
    assert back.face_id != first_face_id                              # a new track ...
    assert back.person_id == person_id                                # ... of the same person
    baseline = pipeline.neutral.baseline(back.face_id)
    assert baseline is not None and np.allclose(baseline.resting, resting)
    pipeline.close()


def test_after_the_return_window_a_person_is_new(models):
    pipeline = create_pipeline(PipelineConfig(people=PeopleConfig(return_window_s=2.0)))
    astronaut = frame_with((ASTRONAUT, 200, False))
    result, t = run(pipeline, astronaut, 0.0, 1.0)
    person_id = result.faces[0].person_id
    result, t = run(pipeline, background((640, 480)).copy(), t, 5.0)
    result, t = run(pipeline, astronaut, t, 1.0)
    assert result.faces[0].person_id not in ('', person_id)
    pipeline.close()


def test_two_people_get_different_person_ids(models):
    pipeline = create_pipeline(PipelineConfig())
    result, _ = run(pipeline, frame_with((ASTRONAUT, 170, False), (CAMERAMAN, 470, False)), 0.0, 1.5)
    ids = {f.person_id for f in result.faces}
    assert len(result.faces) == 2 and len(ids) == 2 and '' not in ids
    pipeline.close()


def test_enrolled_authority_gates_non_stop_commands_and_survives_a_restart(models, tmp_path):
    """Enrol the astronaut of a two-face stream; with command_authority enrolled only she may command;
    a new pipeline on the same file (a node restart) recognises her again, with her baseline."""
    store = str(tmp_path / 'people.json')
    config = PipelineConfig(people=PeopleConfig(command_authority='enrolled'), people_file=store,
                            attention=dataclasses.replace(PipelineConfig().attention, max_yaw_deg=90.0,
                                                          max_pitch_deg=90.0))
    # both faces frontal enough to attend (the cameraman's yaw is let through here): authority alone decides
    two = frame_with((ASTRONAUT, 170, False), (CAMERAMAN, 470, False))
    pipeline = create_pipeline(config)
    result, t = run(pipeline, two, 0.0, 1.0)
    assert all(f.attending and not f.may_command for f in result.faces)    # nobody enrolled yet
    astronaut = faces_by_source(result)['left']
    message = pipeline.people.request_enrolment('eileen', astronaut.face_id, 1.5)
    assert 'eileen' in message
    pipeline.neutral.request(astronaut.face_id, 1.0)
    result, t = run(pipeline, two, t, 2.5)
    assert pipeline.people.last_enrolment.startswith("enrolled 'eileen' as op1"), pipeline.people.last_enrolment
    faces = faces_by_source(result)
    assert faces['left'].person_id == 'op1' and faces['left'].person_name == 'eileen' and faces['left'].may_command
    assert not faces['right'].may_command and faces['right'].person_id.startswith('p')
    result, t = run(pipeline, two, t, 0.5)                           # the baseline reaches the stored person
    stored = load_store(store, pipeline.people.embedder.model_id, 128, pipeline.labels)
    assert [p.name for p in stored.people] == ['eileen'] and stored.people[0].baseline is not None
    pipeline.close()

    restarted = create_pipeline(config)
    result, _ = run(restarted, two, 100.0, 1.5)
    faces = faces_by_source(result)
    assert faces['left'].person_id == 'op1' and faces['left'].may_command and not faces['right'].may_command
    assert restarted.neutral.baseline(faces['left'].face_id) is not None
    assert restarted.people.forget('eileen') == ['op1']
    assert load_store(store, restarted.people.embedder.model_id, 128, restarted.labels).people == []
    restarted.close()


def test_enrolment_is_refused_for_bad_requests_and_a_face_enrolled_under_another_name(models, tmp_path):
    pipeline = create_pipeline(PipelineConfig(people_file=str(tmp_path / 'people.json')))
    astronaut = frame_with((ASTRONAUT, 200, False))
    result, t = run(pipeline, astronaut, 0.0, 1.0)
    face_id = result.faces[0].face_id
    with pytest.raises(ValueError, match='not in view'):
        pipeline.people.request_enrolment('eileen', 'f999')
    with pytest.raises(ValueError, match='name'):
        pipeline.people.request_enrolment('  ', face_id)
    with pytest.raises(ValueError, match='duration_s'):
        pipeline.people.request_enrolment('eileen', face_id, 500.0)
    pipeline.people.request_enrolment('eileen', face_id, 1.0)
    result, t = run(pipeline, astronaut, t, 1.5)
    assert pipeline.people.last_enrolment.startswith("enrolled 'eileen'")
    pipeline.people.request_enrolment('impostor', face_id, 1.0)
    result, t = run(pipeline, astronaut, t, 1.5)
    assert 'matches enrolled' in pipeline.people.last_enrolment and len(pipeline.people.enrolled) == 1
    pipeline.close()


def test_a_corrupt_store_is_not_overwritten_and_enrolment_is_refused(models, tmp_path):
    path = tmp_path / 'people.json'
    path.write_text('{"format": "fer_ros.people", "version": 1, "embedding_model": "x", "peo')
    pipeline = create_pipeline(PipelineConfig(people_file=str(path)))
    assert 'corrupt' in pipeline.people.store_error and str(path) in pipeline.people.store_error
    result, _ = run(pipeline, frame_with((ASTRONAUT, 200, False)), 0.0, 1.0)
    with pytest.raises(ValueError, match='enrolment refused'):
        pipeline.people.request_enrolment('eileen', result.faces[0].face_id)
    assert path.read_text().endswith('"peo')                          # untouched
    pipeline.close()
