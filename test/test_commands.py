"""Command mapping: commands.yaml validation and the timing rules (confirmation, hysteresis, dwell,
STOP priority and latching, HOLD timeout, PROCEED, heartbeats, stamps going backwards)."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import yaml

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import COASTING, TENTATIVE, TRACKED, FaceResult
from fer_ros.hri.command_config import HRI_COMMANDS, CommandConfigError, load_command_config, parse_command_config
from fer_ros.hri.commands import CommandMapper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_YAML = os.path.join(REPO, 'config', 'commands.yaml')
DT = 1 / 30                                  # a 30 Hz camera


def _raw() -> dict:
    with open(DEFAULT_YAML, encoding='utf-8') as f:
        return yaml.safe_load(f)


def face(expression: str, confidence: float = 0.9, face_id: str = 'f1', tracking: str = TRACKED) -> FaceResult:
    p = np.full(len(EXPRESSIONS), (1 - confidence) / (len(EXPRESSIONS) - 1), dtype=np.float32)
    p[EXPRESSIONS.index(expression)] = confidence
    return FaceResult(face_id=face_id, box=(10.0, 10.0, 80.0, 80.0), expression=expression,
                      confidence=confidence, probabilities=p, raw_probabilities=p.copy(),
                      valence=0.0, arousal=0.0, detection_score=0.9, tracking=tracking)


def mixed(face_id: str = 'f1', tracking: str = TRACKED, **probabilities: float) -> FaceResult:
    """A face with these probabilities (the rest shared equally); its expression is the winner."""
    rest = (1 - sum(probabilities.values())) / (len(EXPRESSIONS) - len(probabilities))
    p = np.array([probabilities.get(e, rest) for e in EXPRESSIONS], dtype=np.float32)
    best = int(np.argmax(p))
    return FaceResult(face_id=face_id, box=(10.0, 10.0, 80.0, 80.0), expression=EXPRESSIONS[best],
                      confidence=float(p[best]), probabilities=p, raw_probabilities=p.copy(),
                      valence=0.0, arousal=0.0, detection_score=0.9, tracking=tracking)


class Clock:
    """Feeds frames to a mapper at 30 Hz and records what it emits."""

    def __init__(self, mapper: CommandMapper, t: float = 100.0) -> None:
        self.mapper, self.t = mapper, t
        self.log: list = []

    def frames(self, seconds: float, faces_fn) -> list:
        """Frames for ``seconds``; faces_fn(i) -> faces of frame i. Returns the changes emitted."""
        out = []
        for i in range(int(round(seconds / DT))):
            self.t += DT
            out += self.mapper.update(faces_fn(i) if callable(faces_fn) else faces_fn, self.t)
        self.log += out
        return [c for c in out if not c.heartbeat]

    def ticks(self, seconds: float, period: float = 0.1) -> list:
        out = []
        for _ in range(int(round(seconds / period))):
            self.t += period
            out += self.mapper.tick(self.t)
        self.log += out
        return [c for c in out if not c.heartbeat]


@pytest.fixture
def config():
    return load_command_config(DEFAULT_YAML)


@pytest.fixture
def clock(config):
    return Clock(CommandMapper(config))


# --- the packaged mapping ---------------------------------------------------------------------------

def test_default_mapping_is_the_papers_scenario(config):
    expected = {'scared': 'STOP', 'angry': 'STOP', 'surprised': 'PAUSE', 'disgusted': 'REJECT',
                'sad': 'ASSIST', 'happy': 'CONFIRM', 'neutral': None}
    assert {e: config.command_for(e) for e in EXPRESSIONS} == expected
    assert set(config.commands) == set(HRI_COMMANDS)
    assert max(config.commands.values(), key=lambda c: c.priority).name == 'STOP'
    assert config.commands['STOP'].priority == 255
    stop_rules = [r for r in config.rules.values() if r.command == 'STOP']
    others = [r for r in config.rules.values() if r.command not in (None, 'STOP')]
    assert max(r.confirm_s for r in stop_rules) <= min(r.confirm_s for r in others)


def test_default_path_is_the_packaged_file():
    config = load_command_config(None)
    assert os.path.samefile(config.source, DEFAULT_YAML)


# --- validation ------------------------------------------------------------------------------------

def _bad(mutate, match: str) -> None:
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(CommandConfigError, match=match) as info:
        parse_command_config(data, source='commands.yaml')
    assert str(info.value).startswith('commands.yaml: ')
    assert isinstance(info.value, ValueError)


def test_error_names_the_bad_key():
    _bad(lambda d: d['rules']['scared'].update(min_confidence=1.5),
         r'^commands\.yaml: rules\.scared\.min_confidence: must be in 0\.\.1, got 1\.5$')


@pytest.mark.parametrize('mutate,match', [
    (lambda d: d.update(heartbeat_priod_s=1.0), r'heartbeat_priod_s: unknown key'),
    (lambda d: d['commands']['STOP'].update(priorty=9), r'commands\.STOP\.priorty: unknown key'),
    (lambda d: d['rules']['happy'].update(comand='CONFIRM'), r'rules\.happy\.comand: unknown key'),
    (lambda d: d['rules'].update(fear={'command': 'STOP'}), r"rules\.fear: unknown expression \(did you mean 'scared'"),
    (lambda d: d['rules'].update(contempt={'command': 'REJECT'}), r'rules\.contempt: unknown expression'),
    (lambda d: d['rules']['sad'].update(command='HELP'), r"rules\.sad\.command: 'HELP' is not declared"),
    (lambda d: d['rules']['sad'].update(command='stop'), r"rules\.sad\.command: unknown command 'stop'"),
    (lambda d: d['commands'].pop('ASSIST'), r"rules\.sad\.command: 'ASSIST' is not declared"),
    (lambda d: d['commands'].update(HALT={'priority': 10}), r'commands\.HALT: unknown command'),
    (lambda d: d['commands'].pop('PROCEED'), r'commands: PROCEED must be declared'),
    (lambda d: d['commands']['PAUSE'].update(priority=255), r'commands\.\w+\.priority: 255 is also the priority'),
    (lambda d: d['commands']['PAUSE'].update(priority=256), r'commands\.PAUSE\.priority: must be an int in 0\.\.255'),
    (lambda d: d['commands']['STOP'].update(priority=20), r'commands\.PAUSE\.priority: 200 is above STOP'),
    (lambda d: d['commands']['STOP'].pop('release_s'), r'commands\.STOP\.release_s: required'),
    (lambda d: d['commands']['HOLD'].update(confirm_s=1.0), r'commands\.HOLD\.confirm_s: HOLD is raised by'),
    (lambda d: d['rules']['neutral'].update(command='HOLD'), r'rules\.neutral\.command: HOLD cannot be mapped'),
    (lambda d: d['rules']['happy'].update(confirm_s=0.1), r'rules\.happy\.confirm_s: 0\.1 is faster than STOP'),
    (lambda d: d['rules']['happy'].pop('command'), r'rules\.happy\.command: missing'),
    (lambda d: d['commands']['CONFIRM'].update(confirm_s=-1), r'commands\.CONFIRM\.confirm_s: must be >= 0'),
    (lambda d: d['commands']['PAUSE'].update(release_s=0), r'commands\.PAUSE\.release_s: must be > 0'),
    (lambda d: d.update(hysteresis=0.7), r'hysteresis: must be in 0\.\.0\.5'),
    (lambda d: d.update(hold_timeout_s='2s'), r"hold_timeout_s: must be a number, got '2s'"),
    (lambda d: d.update(version=2), r'version: unsupported version 2'),
    (lambda d: d.pop('rules'), r'rules: missing'),
    (lambda d: [d['rules'][e].update(command=None) for e in ('scared', 'angry')], r'rules: no expression maps to STOP'),
    (lambda d: [d['rules'][e].update(min_confidence=1.0) for e in ('scared', 'angry')],
     r'rules: no expression maps to STOP with a min_confidence below 1'),
])
def test_validation_errors(mutate, match):
    _bad(mutate, match)


def test_custom_command_word_must_be_declared_as_custom():
    def add(custom):
        def mutate(d):
            d['commands']['FETCH_TOOL'] = {'priority': 90, **({'custom': True} if custom else {})}
            d['rules']['happy']['command'] = 'FETCH_TOOL'
        return mutate
    _bad(add(False), r'commands\.FETCH_TOOL: unknown command')
    data = _raw()
    add(True)(data)
    assert parse_command_config(data).command_for('happy') == 'FETCH_TOOL'


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        load_command_config(str(tmp_path / 'nope.yaml'))
    broken = tmp_path / 'broken.yaml'
    broken.write_text('rules: [unclosed\n')
    with pytest.raises(CommandConfigError, match=r'broken\.yaml: \(yaml\): not valid YAML'):
        load_command_config(str(broken))
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({**_raw(), 'hold_timeout_s': -1}))
    with pytest.raises(CommandConfigError, match=r'bad\.yaml: hold_timeout_s: must be > 0'):
        load_command_config(str(bad))
    empty = tmp_path / 'empty.yaml'
    empty.write_text('')
    with pytest.raises(CommandConfigError, match=r'empty\.yaml: \(top level\): must be a mapping'):
        load_command_config(str(empty))


# --- confirmation and flicker ---------------------------------------------------------------------

def test_command_needs_the_confirmation_time(clock, config):
    start = clock.t
    changes = clock.frames(1.0, [face('happy', 0.9)])
    assert [c.command for c in changes] == ['CONFIRM']
    first_frame = start + DT
    confirm_s = config.rules['happy'].confirm_s
    assert confirm_s - 1e-6 <= changes[0].stamp - first_frame < confirm_s + DT + 1e-9
    c = changes[0]
    assert (c.source_face_id, c.expression, c.priority, c.heartbeat) == ('f1', 'happy', 100, False)
    assert c.confidence == pytest.approx(0.9)
    assert clock.mapper.current == c


def test_single_noisy_frames_never_make_a_command(clock):
    # one scared frame (above STOP's threshold) every 10 neutral frames, for 5 s: never STOP
    changes = clock.frames(5.0, lambda i: [face('scared' if i % 10 == 0 else 'neutral', 0.8)])
    assert changes == []


def test_a_gap_in_the_evidence_restarts_the_confirmation(clock, config):
    confirm_s = config.rules['happy'].confirm_s
    # 0.5 s happy, one neutral frame, then happy again: confirmation counts from the second onset
    assert clock.frames(0.5, [face('happy')]) == []
    clock.frames(DT, [face('neutral')])
    restart = clock.t + DT
    changes = clock.frames(1.0, [face('happy')])
    assert changes[0].command == 'CONFIRM' and changes[0].stamp - restart >= confirm_s - 1e-9


def test_hysteresis_keeps_a_wavering_expression_confirming(config):
    def wavering(i):   # min 0.6, exit 0.5
        return [face('happy', 0.62 if i % 2 == 0 else 0.55)]
    clock = Clock(CommandMapper(config))
    assert [c.command for c in clock.frames(1.5, wavering)] == ['CONFIRM']
    data = _raw()
    data['hysteresis'] = 0.0
    clock = Clock(CommandMapper(parse_command_config(data)))
    assert clock.frames(1.5, wavering) == []


def test_below_threshold_never_starts(clock):
    assert clock.frames(3.0, [face('happy', 0.5)]) == []


# --- priorities, dwell, hysteresis in time ----------------------------------------------------------

def test_stop_preempts_at_once_and_is_confirmed_fastest(clock, config):
    # scared and happy appear together: STOP first (shortest confirmation, highest priority)
    changes = clock.frames(1.0, [face('happy', 0.9, 'f1'), face('scared', 0.7, 'f2')])
    assert [c.command for c in changes] == ['STOP']
    assert (changes[0].source_face_id, changes[0].expression, changes[0].priority) == ('f2', 'scared', 255)


def test_stop_ignores_the_dwell_time(clock, config):
    clock.frames(1.0, [face('happy')])
    changed = clock.mapper.current.stamp
    changes = clock.frames(0.5, [face('scared')])            # well inside min_dwell_s
    assert [c.command for c in changes] == ['STOP']
    assert changes[0].stamp - changed < config.min_dwell_s


def test_dwell_time_spaces_other_changes(clock, config):
    clock.frames(1.0, [face('happy')])
    changed = clock.mapper.current.stamp
    changes = clock.frames(2.0, [face('sad')])               # ASSIST confirms after 0.8 s, waits for dwell
    assert [c.command for c in changes] == ['ASSIST']
    assert changes[0].stamp - changed >= config.min_dwell_s


def test_lower_priority_waits_while_the_current_command_is_supported(clock):
    clock.frames(1.5, [face('sad', 0.9, 'f1')])
    assert clock.mapper.current.command == 'ASSIST'
    # a second, happy face: CONFIRM is confirmed but ASSIST (higher) is still supported by f1
    assert clock.frames(3.0, [face('sad', 0.9, 'f1'), face('happy', 0.9, 'f2')]) == []
    # f1 turns neutral: ASSIST loses its support, CONFIRM takes over
    changes = clock.frames(1.0, [face('neutral', 0.9, 'f1'), face('happy', 0.9, 'f2')])
    assert [(c.command, c.source_face_id) for c in changes] == [('CONFIRM', 'f2')]


def test_neutral_means_no_change(clock):
    clock.frames(1.0, [face('happy')])
    assert clock.frames(5.0, [face('neutral')]) == []
    assert clock.mapper.current.command == 'CONFIRM'


# --- STOP latching and PROCEED ---------------------------------------------------------------------

def test_stop_is_not_cleared_by_noisy_frames_and_releases_to_proceed(clock, config):
    clock.frames(0.5, [face('scared')])
    assert clock.mapper.current.command == 'STOP'
    release_s = config.commands['STOP'].release_s
    # calm but interrupted by one scared frame every second: never released
    assert clock.frames(4.0, lambda i: [face('scared' if i % 30 == 29 else 'neutral')]) == []
    # a mildly scared face (above the exit threshold) keeps STOP too
    exit_threshold = config.rules['scared'].min_confidence - config.hysteresis
    assert clock.frames(3.0, [face('scared', exit_threshold + 0.02)]) == []
    calm_from = clock.t + DT
    changes = clock.frames(release_s + 0.5, [face('neutral', 0.8, 'f7')])
    assert [c.command for c in changes] == ['PROCEED']
    assert changes[0].stamp - calm_from >= release_s - 1e-9
    assert (changes[0].source_face_id, changes[0].expression) == ('f7', '')


def test_stop_release_goes_straight_to_a_confirmed_command(clock):
    clock.frames(0.5, [face('scared')])
    changes = clock.frames(3.0, [face('happy')])
    assert [c.command for c in changes] == ['CONFIRM']      # not PROCEED first


def test_stop_is_kept_when_the_face_leaves(clock, config):
    clock.frames(0.5, [face('scared')])
    assert clock.frames(5.0, []) == []                       # frames without faces
    assert clock.ticks(5.0) == []                            # no frames at all
    assert clock.mapper.current.command == 'STOP'
    beats = [c for c in clock.log if c.heartbeat]
    assert beats and all(c.command == 'STOP' for c in beats)


# --- HOLD ---------------------------------------------------------------------------------------------

def test_hold_after_timeout_without_faces_then_proceed(clock, config):
    clock.frames(1.0, [face('happy')])
    last_face = clock.t
    changes = clock.frames(3.0, [])
    assert [c.command for c in changes] == ['HOLD']
    assert config.hold_timeout_s - 1e-6 <= changes[0].stamp - last_face < config.hold_timeout_s + DT + 1e-9
    assert (changes[0].source_face_id, changes[0].expression, changes[0].priority) == ('', '', 50)
    back = clock.t + DT
    changes = clock.frames(2.0, [face('neutral', 0.8, 'f3')])
    assert [c.command for c in changes] == ['PROCEED']
    assert changes[0].stamp - back >= config.commands['HOLD'].release_s - 1e-9


def test_hold_from_the_timer_when_frames_stop(clock, config):
    clock.frames(1.0, [face('happy')])
    last_frame = clock.t
    changes = clock.ticks(3.0)
    assert [c.command for c in changes] == ['HOLD']
    assert changes[0].stamp - last_frame == pytest.approx(config.hold_timeout_s, abs=0.1 + 1e-6)


def test_hold_at_start_when_nobody_is_there(clock, config):
    start = clock.t
    assert clock.mapper.tick(start) == []
    changes = clock.ticks(3.0)
    assert [c.command for c in changes] == ['HOLD']
    assert changes[0].stamp - start == pytest.approx(config.hold_timeout_s, abs=0.1 + 1e-6)


def test_a_confirmed_expression_ends_hold_without_proceed(clock):
    clock.ticks(3.0)
    assert clock.mapper.current.command == 'HOLD'
    assert [c.command for c in clock.frames(1.0, [face('sad')])] == ['ASSIST']


# --- heartbeat ----------------------------------------------------------------------------------------

def test_heartbeat_repeats_the_current_command(clock, config):
    assert clock.ticks(1.0) == [] and clock.log == []        # nothing to repeat yet
    clock.frames(1.0, [face('happy')])
    change = clock.mapper.current
    clock.log.clear()
    clock.frames(1.0, [face('happy')])
    clock.ticks(1.05)                                        # frames stop for a while (< hold timeout)
    beats = [c for c in clock.log if c.heartbeat]
    assert len(clock.log) == len(beats) == 2
    assert all((b.command, b.source_face_id, b.priority) == ('CONFIRM', 'f1', 100) for b in beats)
    gaps = np.diff([change.stamp] + [b.stamp for b in beats])
    assert np.all(gaps >= config.heartbeat_period_s - 1e-9) and np.all(gaps < config.heartbeat_period_s + 0.1 + 1e-9)


# --- stamps going backwards -----------------------------------------------------------------------------

def test_stamps_running_backwards_are_refused(clock):
    """Ordering is StampPolicy's job (test_stamps.py); the mapper refuses what it must never see."""
    clock.frames(1.0, [face('neutral')])
    with pytest.raises(ValueError, match='older than the newest'):
        clock.mapper.update([face('scared')], clock.t - 0.5)
    with pytest.raises(ValueError, match='not finite'):
        clock.mapper.tick(float('nan'))
    assert clock.mapper.current is None
    assert clock.frames(1.0, [face('happy')])[0].command == 'CONFIRM'   # in-order frames go on


def test_the_timeline_in_docs_commands_md(config):
    """docs/commands.md shows this exact run (10 Hz frames); keep both in step."""
    mapper = CommandMapper(config)
    script = [(0.0, 1.0, 'happy'), (1.0, 2.0, 'neutral'), (2.0, 2.1, 'scared'), (2.1, 2.8, 'neutral'),
              (2.8, 3.5, 'scared'), (3.5, 5.5, 'neutral'), (5.5, 9.0, None), (9.0, 10.0, 'neutral')]
    emitted = []
    for step in range(100):
        t = step / 10
        expression = next(e for a, b, e in script if a - 1e-9 <= t < b - 1e-9)
        for c in mapper.update([face(expression)] if expression else [], t):
            emitted.append((round(t, 1), c.command, c.heartbeat))
    assert emitted == [(0.6, 'CONFIRM', False), (1.6, 'CONFIRM', True), (2.6, 'CONFIRM', True),
                       (3.0, 'STOP', False), (4.0, 'STOP', True), (5.0, 'PROCEED', False),
                       (6.0, 'PROCEED', True), (7.0, 'PROCEED', True), (7.4, 'HOLD', False),
                       (8.4, 'HOLD', True), (9.4, 'HOLD', True), (9.5, 'PROCEED', False)]


def test_reset_keeping_the_command_keeps_a_latched_stop(clock, config):
    clock.frames(0.5, [face('scared')])
    clock.mapper.reset(keep_command=True)
    clock.t = 1.0                                            # e.g. the node saw its clock jump back
    assert clock.frames(1.0, [face('neutral')]) == []        # release time starts afresh
    assert clock.mapper.current.command == 'STOP'
    assert [c.command for c in clock.frames(1.0, [face('neutral')])] == ['PROCEED']
    assert [(c.command, c.heartbeat) for c in clock.log[-2:]] == [('STOP', True), ('PROCEED', False)]
    clock.mapper.reset()
    assert clock.mapper.current is None
    assert clock.frames(1.0, [face('neutral')]) == []        # neutral: nothing to say after a full reset


# --- STOP evidence per command, coasting and tentative faces (issue 16) ---------------------------------

def test_stop_evidence_is_the_summed_stop_probability_whatever_the_winner(clock, config):
    # surprised wins every frame, but scared 0.36 + angry 0.12 is 0.36/0.45 + 0.12/0.55 = 1.02 STOP units
    frightened = mixed(surprised=0.44, scared=0.36, angry=0.12)
    assert frightened.expression == 'surprised'
    changes = clock.frames(1.0, [frightened])
    assert [c.command for c in changes] == ['STOP']
    stop = changes[0]
    assert (stop.expression, stop.confidence) == ('scared', pytest.approx(0.48))   # the largest share, summed
    # below one STOP unit it is PAUSE's face (surprised wins, PAUSE confirms)
    clock = Clock(CommandMapper(config))
    assert [c.command for c in clock.frames(1.0, [mixed(surprised=0.5, scared=0.3, angry=0.05)])] == ['PAUSE']


def test_a_wobbling_winner_confirms_stop_and_keeps_it_latched(clock, config):
    """scared and surprised winning in turn on one frightened face (fear stays above the hysteresis level):
    STOP after confirm_s as for a steady face, and no release while it goes on (10 s)."""
    def wobble(i):
        return [mixed(scared=0.6, surprised=0.2) if i % 2 == 0 else mixed(surprised=0.5, scared=0.38)]
    start = clock.t
    changes = clock.frames(1.0, wobble)
    assert [c.command for c in changes] == ['STOP']
    assert changes[0].stamp - (start + DT) == pytest.approx(config.commands['STOP'].confirm_s, abs=1e-6)
    assert clock.frames(10.0, wobble) == []
    assert clock.mapper.current.command == 'STOP'


def test_only_stop_ignores_the_winner(clock):
    """Lower-priority commands stay argmax: happy 0.62 that never wins gives no CONFIRM."""
    assert clock.frames(3.0, [mixed(neutral=0.3, happy=0.29, sad=0.3)]) == []


def test_angry_alone_confirms_after_its_own_time(clock, config):
    start = clock.t
    changes = clock.frames(1.0, [face('angry', 0.7)])
    assert [(c.command, c.expression) for c in changes] == [('STOP', 'angry')]
    assert changes[0].stamp - (start + DT) == pytest.approx(config.rules['angry'].confirm_s, abs=1e-6)


@pytest.mark.parametrize('every', [2, 3, 5, 10])
def test_coasting_faces_keep_the_run_through_missed_detections(config, every):
    """1 frame in ``every`` the detector misses the face: the tracker hands the mapper the coasting
    face (its last smoothed state), and STOP comes at the same stamp as with every frame detected."""
    first = []
    for miss in (False, True):
        clock = Clock(CommandMapper(config))
        missed = [COASTING if miss and i % every == every - 1 else TRACKED for i in range(30)]
        first.append(clock.frames(1.0, lambda i: [face('scared', 0.6, tracking=missed[i])])[0].stamp)
    assert first[0] == first[1]


def test_coasting_and_tentative_faces_are_not_in_view(clock, config):
    clock.frames(0.5, [face('scared')])
    assert clock.mapper.current.command == 'STOP'
    # a calm face the tracker only coasts (or has not published yet) does not release STOP...
    assert clock.frames(3.0, [face('neutral', tracking=COASTING)]) == []
    assert clock.frames(3.0, [face('neutral', tracking=TENTATIVE)]) == []
    assert clock.mapper.current.command == 'STOP'
    # ...nor counts as a face in view for HOLD
    clock = Clock(CommandMapper(config))
    clock.frames(1.0, [face('happy')])
    changes = clock.frames(3.0, [face('neutral', tracking=COASTING)])
    assert [c.command for c in changes] == ['HOLD']


def test_a_coasting_face_with_stop_evidence_keeps_stop_latched(clock):
    clock.frames(0.5, [face('scared', 0.7, 'f1')])
    # f1 is no longer detected but coasts with its scared state; a calm f2 is in view: no release
    assert clock.frames(3.0, [face('scared', 0.7, 'f1', COASTING), face('neutral', 0.9, 'f2')]) == []
    assert clock.mapper.current.command == 'STOP'


def test_evidence_counts_from_a_new_face_first_detection(clock, config):
    """The tracker publishes a face from its second detection: its first (tentative) frame already counts
    as evidence, so a face that appears frightened stops the robot confirm_s after it appears."""
    start = clock.t + DT
    changes = clock.frames(1.0, lambda i: [face('scared', tracking=TENTATIVE if i == 0 else TRACKED)])
    assert [c.command for c in changes] == ['STOP']
    assert changes[0].stamp - start == pytest.approx(config.commands['STOP'].confirm_s, abs=1e-6)
    assert changes[0].source_face_id == 'f1'


def test_a_face_that_is_never_published_cannot_command(clock):
    assert clock.frames(2.0, [face('scared', tracking=TENTATIVE)]) == []


def test_a_model_that_cannot_show_a_stop_expression_is_refused(config):
    labels = tuple(e for e in EXPRESSIONS if e != 'angry')
    with pytest.raises(ValueError, match=r"labels \[.*\] lack \['angry'\], which the commands file .* maps to STOP "
                                         r'\(rules\.angry\)'):
        CommandMapper(config, labels)
    # a model whose labels are another order is fine: evidence is read by label
    reordered = CommandMapper(config, tuple(reversed(EXPRESSIONS)))
    p = np.zeros(len(EXPRESSIONS), np.float32)
    p[list(reversed(EXPRESSIONS)).index('scared')] = 0.9
    scared = FaceResult('f1', (0.0, 0.0, 9.0, 9.0), 'scared', 0.9, p, p, 0.0, 0.0, 0.9)
    stamps = [100 + k * DT for k in range(30)]
    assert any(c.command == 'STOP' for t in stamps for c in reordered.update([scared], t))


def test_forced_hold(clock, config):
    mapper = clock.mapper
    assert [c.command for c in mapper.hold(clock.t)] == ['HOLD']          # activation: nothing seen yet
    assert mapper.hold(clock.t) == []                                      # already HOLD
    clock.frames(0.5, [face('scared')])
    assert mapper.current.command == 'STOP'
    assert mapper.hold(clock.t + 0.01) == []                               # a stall keeps a latched STOP
    assert [c.command for c in mapper.hold(clock.t + 0.02, final=True)] == ['HOLD']   # shutdown: HOLD
    clock.t += 0.02
    clock.frames(2.0, [face('happy')])
    assert mapper.current.command == 'CONFIRM'
    held = mapper.hold(clock.t + 0.01)                                     # a stall replaces CONFIRM
    assert [(c.command, c.heartbeat) for c in held] == [('HOLD', False)]


def test_the_stop_timeline_in_docs_commands_md(config):
    """docs/commands.md shows this exact run (10 Hz frames): a frightened face, missed in some frames, whose
    winner wobbles between scared and surprised; keep both in step."""
    mapper = CommandMapper(config)
    script = {0: mixed(tracking=TENTATIVE, scared=0.6), 1: mixed(scared=0.6), 2: mixed(tracking=COASTING, scared=0.6),
              3: mixed(surprised=0.5, scared=0.38), 4: mixed(tracking=COASTING, surprised=0.5, scared=0.38),
              5: mixed(scared=0.5, surprised=0.3), 6: mixed(surprised=0.5, scared=0.38)}
    emitted = []
    for step in range(40):
        t = step / 10
        for c in mapper.update([script.get(step, face('neutral', 0.9))], t):
            emitted.append((round(t, 1), c.command, c.heartbeat))
    assert emitted == [(0.2, 'STOP', False), (1.2, 'STOP', True), (2.2, 'PROCEED', False), (3.2, 'PROCEED', True)]
