"""Enrolled operators on a real fer_node process, over real DDS: with command_authority enrolled, this process
enrols one face of a two-face stream through ~/enroll_person; only that face's expressions command; the
enrolment survives a node restart (a new process reading the same people file). And a scared face that
neither attends nor is enrolled still stops the robot.

The camera process streams one photo: the astronaut (smiling: CONFIRM) at the left and the cameraman (read
as sad at rest: ASSIST) at the right. Attention is opened wide here (attention_max_yaw_deg 90) so the
cameraman attends and authority alone decides who commands (test_node_attention.py checks attention).
"""
from __future__ import annotations

import cv2
import pytest

from ros_harness import latest_diag, requires_ros, start_camera, start_node

pytestmark = [pytest.mark.ros, requires_ros]


def _call(collector, client, request, timeout=10.0):
    assert client.wait_for_service(timeout_sec=30.0), f'{client.srv_name} not offered'
    future = client.call_async(request)
    collector.wait_for(future.done, timeout, what=f'a reply from {client.srv_name}')
    return future.result()


def _faces(collector, after: float = 0.0) -> dict[str, object]:
    """The latest expression array's faces received after ``after``, keyed 'left' / 'right' by position."""
    exprs = [m for t, m in collector.snapshot()[0] if t > after]
    return {('left' if f.roi.x_offset < 320 else 'right'): f for f in exprs[-1].faces} if exprs else {}


def _commands(collector, after: float) -> list:
    return [m for t, m in collector.snapshot()[1] if t > after and not m.heartbeat]


def two_face_photo(tmp_path) -> str:
    from fer_ros.sample_frames import FACE_SOURCES, background, paste_face

    frame = background((640, 480)).copy()
    paste_face(frame, FACE_SOURCES[0], (170, 230), 170)        # the astronaut
    paste_face(frame, FACE_SOURCES[1], (470, 230), 170)        # the cameraman
    path = str(tmp_path / 'two_faces.png')
    cv2.imwrite(path, frame)
    return path


def test_only_the_enrolled_face_commands_and_the_enrolment_survives_a_restart(tmp_path, collector):
    from fer_ros.srv import EnrollPerson, ListPeople

    params = {'command_authority': 'enrolled', 'people_dir': str(tmp_path / 'people'),
              'attention_max_yaw_deg': 90.0, 'attention_max_pitch_deg': 90.0, 'diagnostics_period_s': 0.3}
    node = start_node(tmp_path, params)
    camera = restarted = None
    try:
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 10.0, 'images': [two_face_photo(tmp_path)]})
        collector.wait_for(lambda: len(_faces(collector)) == 2, 60, node, 'both faces to be tracked')
        collector.wait_for(lambda: all(f.person_id for f in _faces(collector).values()), 30, node,
                           'person ids for both faces')
        faces = _faces(collector)
        assert {f.expression for f in faces.values()} == {'happy', 'sad'}, faces
        assert not any(f.may_command for f in faces.values())         # nobody is enrolled yet
        enroll = collector.node.create_client(EnrollPerson, '/fer_node/enroll_person')
        listing = collector.node.create_client(ListPeople, '/fer_node/list_people')

        several = _call(collector, enroll, EnrollPerson.Request(name='eileen', face_id='', duration_s=2.0))
        assert not several.accepted and 'name one with face_id' in several.message
        astronaut_id = faces['left'].face_id
        # 4 s: at least 5 good samples (0.1 s apart) even when a loaded machine processes only a few frames a second
        reply = _call(collector, enroll, EnrollPerson.Request(name='eileen', face_id=astronaut_id, duration_s=4.0))
        assert reply.accepted, reply.message
        collector.wait_for(lambda: list(_call(collector, listing, ListPeople.Request()).names) == ['eileen'], 60,
                           node, 'eileen to be enrolled')
        people = _call(collector, listing, ListPeople.Request())
        assert list(people.person_ids) == ['op1'] and people.embeddings[0] >= 1, people.last_enrolment
        enrolled_at = __import__('time').time()

        # from now on the astronaut commands (CONFIRM); the cameraman's sad (ASSIST) does not
        collector.wait_for(lambda: any(c.command == 'CONFIRM' for c in _commands(collector, enrolled_at)), 30, node,
                           "the enrolled astronaut's CONFIRM")
        confirm = next(c for c in _commands(collector, enrolled_at) if c.command == 'CONFIRM')
        assert confirm.source_face_id == astronaut_id
        collector.wait_for(lambda: latest_diag(collector).get('people_enrolled') == 'op1=eileen', 30, node,
                           'the enrolment in /diagnostics')
        faces = _faces(collector, enrolled_at)
        assert faces['left'].person_id == 'op1' and faces['left'].person_name == 'eileen'
        assert faces['left'].may_command and not faces['right'].may_command and faces['right'].attending
        # the cameraman is still read as sad, and ASSIST (his command when anyone may command) never came
        assert faces['right'].expression == 'sad'
        assert not any(c.command == 'ASSIST' for c in _commands(collector, 0.0))

        node.stop()
        restart_at = __import__('time').time()
        restarted = start_node(tmp_path, params, name='restarted')
        collector.wait_for(lambda: any(f.person_name == 'eileen' for f in _faces(collector, restart_at).values()),
                           90, restarted, 'the restarted node to recognise eileen')
        faces = _faces(collector, restart_at)
        assert faces['left'].person_id == 'op1' and faces['left'].may_command and not faces['right'].may_command
        assert list(_call(collector, listing, ListPeople.Request()).names) == ['eileen']
        # every command message carries the command in force (docs/commands.md, safety contract): the change
        # itself may be published before this process matched the new node, its heartbeats are not
        collector.wait_for(lambda: any(m.command == 'CONFIRM' and m.source_face_id == faces['left'].face_id
                                       for t, m in collector.snapshot()[1] if t > restart_at), 30, restarted,
                           "eileen's CONFIRM after the restart")
        assert not any(c.command == 'ASSIST' for c in _commands(collector, 0.0))
        assert restarted.popen.poll() is None
    finally:
        for proc in (camera, node, restarted):
            if proc is not None:
                proc.stop()


def test_a_scared_face_that_may_not_command_still_stops_the_robot(tmp_path, collector):
    """STOP from a face that neither attends (attention_min_face_px above its size: a person far away) nor is
    enrolled (command_authority enrolled, nobody enrolled): the real classifier reads assets/scared_face.jpg
    as scared, and the node stops."""
    from ros_harness import REPO

    params = {'command_authority': 'enrolled', 'people_dir': str(tmp_path / 'people'),
              'attention_min_face_px': 400.0}
    node = start_node(tmp_path, params)
    camera = None
    try:
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 10.0, 'images': [str(REPO / 'assets' / 'scared_face.jpg')]})
        collector.wait_for(lambda: any(c.command == 'STOP' for c in _commands(collector, 0.0)), 60, node,
                           'STOP from the scared face')
        stop = next(c for c in _commands(collector, 0.0) if c.command == 'STOP')
        (face,) = _faces(collector).values()
        assert stop.source_face_id == face.face_id and stop.expression == 'scared'
        assert face.expression == 'scared' and not face.attending and not face.may_command
        assert face.attention.startswith('face ') and '< 400' in face.attention
        assert face.person_id.startswith('p') and face.person_name == ''
    finally:
        for proc in (camera, node):
            if proc is not None:
                proc.stop()
