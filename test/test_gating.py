"""Who may command, in the command mapper: a face that may not command (not attending, or not enrolled under
command_authority enrolled) gives no command but STOP, and its STOP evidence counts like anyone's."""
from __future__ import annotations

import dataclasses

from test_commands import Clock, face, mixed

from fer_ros.hri.command_config import load_command_config
from fer_ros.hri.commands import CommandMapper


def barred(result):
    """The same face, flagged as one that may not command (what the Pipeline sets for a turned-away face)."""
    return dataclasses.replace(result, attending=False, attention='|yaw| 60 > 30', may_command=False)


def commands(changes) -> list[tuple[str, str]]:
    return [(c.command, c.source_face_id) for c in changes]


def test_a_face_that_may_not_command_gives_no_other_command():
    clock = Clock(CommandMapper(load_command_config()))
    # sad (ASSIST) and happy (CONFIRM) for 3 s from faces that may not command: nothing is issued
    assert commands(clock.frames(3.0, [barred(face('sad', 0.9, 'f2')), barred(face('happy', 0.95, 'f3'))])) == []
    # the same expressions from a face that may command are obeyed
    assert ('CONFIRM', 'f1') in commands(clock.frames(2.0, [face('happy', 0.95, 'f1'),
                                                             barred(face('sad', 0.9, 'f2'))]))


def test_stop_is_taken_from_a_face_that_may_not_command():
    clock = Clock(CommandMapper(load_command_config()))
    clock.frames(1.0, [face('happy', 0.95, 'f1'), barred(face('neutral', 0.9, 'f2'))])
    # the barred bystander is frightened (fear split with anger: STOP evidence by summed probability)
    changes = commands(clock.frames(1.0, [face('happy', 0.95, 'f1'),
                                          barred(mixed('f2', scared=0.40, angry=0.25, surprised=0.2))]))
    assert ('STOP', 'f2') in changes
    assert clock.mapper.current.command == 'STOP'
