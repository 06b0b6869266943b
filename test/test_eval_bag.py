"""fer-eval-bag offline: labels, metrics, bag reading (also damaged bags), reports and the CLI on real
bags made from the repository's face photos, run through the real pipeline (ONNX Runtime, yuface)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import Command, FaceResult, FrameResult
from fer_ros.evaluation import bag_io, bag_types, bag_writer, metrics, offline
from fer_ros.evaluation.bag_io import BagReader
from fer_ros.evaluation.bag_types import BagError, TopicNotFoundError, UnsupportedMessageTypeError
from fer_ros.evaluation.bag_writer import BagWriter
from fer_ros.evaluation.ground_truth import LabelError, Labels
from fer_ros.evaluation.report import FILES, FrameRecord, RunInfo, confusion_from_rows, write_report
from fer_ros.io.image_codec import decode_message
from fer_ros.tools import eval_bag, make_bag
from fer_ros.util.stats import summary

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
PLOTS = ('confusion_matrix', 'per_class', 'latency_histogram', 'stage_latency', 'timeline')
SMALL = (320, 240)     # the sample sequence at a quarter of the pixels keeps the pipeline tests fast


def _model_available() -> str:
    try:
        from fer_ros.util.paths import default_model_path
        default_model_path()
    except FileNotFoundError as exc:
        return str(exc)
    return ''


needs_model = pytest.mark.skipif(bool(_model_available()), reason=_model_available() or 'ok')


# --------------------------------------------------------------------------- labels

def _write(tmp_path: Path, text: str, name: str = 'labels.csv') -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_labels_csv_ranges_face_ids_and_header(tmp_path):
    path = _write(tmp_path, '# comment\nstart_s,end_s,expression,face_id\n0,2,happy\n\n2,4,fear\n1,3,surprise,f2\n')
    labels = Labels.from_csv(path)
    assert [(r.start_s, r.end_s, r.expression, r.face_id, r.row) for r in labels.ranges] == [
        (0.0, 2.0, 'happy', '', 3), (1.0, 3.0, 'surprised', 'f2', 6), (2.0, 4.0, 'scared', '', 5)]
    assert labels.targets(5.0, ['f1']) is None                       # unlabelled time
    t = labels.targets(1.5, ['f1', 'f2'])
    assert t['f1'].expression == 'happy' and t['f2'].expression == 'surprised'
    t = labels.targets(2.0, [])                                      # half-open ranges: [0,2) then [2,4)
    assert t['f2'].expression == 'surprised' and t[''].expression == 'scared'   # both are misses
    assert Labels.from_csv(_write(tmp_path, '0,1,neutral\n', 'no_header.csv')).ranges[0].expression == 'neutral'


def test_whole_bag_label():
    labels = Labels.whole_bag('Happiness')
    assert labels.targets(0.0, ['f1', 'f9'])['f9'].expression == 'happy'
    assert labels.targets(1e9, [])[''].expression == 'happy'
    with pytest.raises(LabelError, match='contempt'):
        Labels.whole_bag('contempt')


@pytest.mark.parametrize('text, expected', [
    ('0,1\n', 'row 1: expected 3 or 4 columns'),
    ('0,1,happy\nzero,1,happy\n', "row 2: start_s 'zero' is not a number"),
    ('-1,1,happy\n', 'row 1: start_s'),
    ('0,1,happy\n3,2,sad\n', 'row 2: end_s 2.0 must be greater than start_s 3.0'),
    ('0,1,contempt\n', 'row 1: unknown expression label'),
    ('0,2,happy\n1,3,sad\n', 'rows 1 and 2 overlap'),
    ('0,2,happy,f1\n1,3,sad,f1\n', "rows 1 and 2 overlap for face 'f1'"),
    ('# only a comment\n', 'no label rows'),
])
def test_labels_errors_name_file_and_row(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(LabelError) as info:
        Labels.from_csv(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_labels_missing_file(tmp_path):
    with pytest.raises(LabelError, match='cannot read labels'):
        Labels.from_csv(tmp_path / 'nope.csv')


# --------------------------------------------------------------------------- metrics

def test_confusion_per_class_and_accuracy():
    pairs = [('happy', 'happy')] * 3 + [('happy', 'sad'), ('happy', None), ('sad', 'sad'), ('sad', 'happy')]
    conf = metrics.confusion(pairs)
    h, s = EXPRESSIONS.index('happy'), EXPRESSIONS.index('sad')
    assert conf.matrix[h, h] == 3 and conf.matrix[h, s] == 1 and conf.matrix[h, -1] == 1
    assert conf.total == 7 and conf.correct == 4 and conf.missed == 1
    assert conf.accuracy() == pytest.approx(4 / 7)
    pc = conf.per_class()
    assert pc['happy']['precision'] == pytest.approx(3 / 4) and pc['happy']['recall'] == pytest.approx(3 / 5)
    assert pc['sad']['precision'] == pytest.approx(1 / 2) and pc['sad']['recall'] == pytest.approx(1 / 2)
    assert pc['angry']['precision'] is None and pc['angry']['recall'] is None
    assert conf.macro()['recall'] == pytest.approx((3 / 5 + 1 / 2) / 2)
    with pytest.raises(ValueError, match='contempt'):
        metrics.confusion([('contempt', 'happy')])
    assert metrics.confusion([]).accuracy() is None


def test_latency_summary():
    s = summary([float(v) for v in range(1, 101)] + [None, math.nan])
    assert s['n'] == 100 and s['median'] == pytest.approx(50.5) and s['p99'] == pytest.approx(99.01)
    assert summary([])['median'] is None


# --------------------------------------------------------------------------- bag reading

def _make_bag(path: Path, storage: str, n: int = 12, fmt: str = 'raw', size=(64, 48), extra_string=False) -> list:
    store = bag_types.make_typestore()
    frames = []
    with BagWriter(path, storage, store) as w:
        topic = '/cam' if fmt == 'raw' else '/cam/compressed'
        for i in range(n):
            img = np.full((size[1], size[0], 3), (i * 10) % 256, np.uint8)
            frames.append(img)
            msgtype, msg = bag_writer.image_message(store, img, 5_000_000_000 + i * 100_000_000, 'cam', fmt)
            if i == 0:
                w.add_topic(topic, msgtype)
                if extra_string:
                    w.add_topic('/chatter', 'std_msgs/msg/String')
            w.write(topic, 5_000_000_000 + i * 100_000_000, msg)
            if extra_string:
                w.write('/chatter', 5_000_000_000 + i * 100_000_000, store.types['std_msgs/msg/String'](data='hi'))
    return frames


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in ('.db3', '.mcap'))


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_topic_errors_list_the_topics(tmp_path, storage):
    bag = tmp_path / 'bag'
    _make_bag(bag, storage, n=2, extra_string=True)
    with BagReader(bag) as r:
        assert r.storage == storage
        with pytest.raises(TopicNotFoundError) as info:
            r.require_topic('/camera/image_raw')
        assert '/cam  [sensor_msgs/msg/Image]  2 messages' in str(info.value) and '/chatter' in str(info.value)
        with pytest.raises(UnsupportedMessageTypeError, match='std_msgs/msg/String'):
            r.require_topic('/chatter')


def test_bag_that_does_not_open(tmp_path):
    with pytest.raises(BagError, match='no such file'):
        BagReader(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='not a rosbag2 directory'):
        BagReader(tmp_path / 'empty')
    (tmp_path / 'junk.mcap').write_bytes(b'definitely not an mcap file' * 10)
    with pytest.raises(BagError, match='cannot open bag'):
        BagReader(tmp_path / 'junk.mcap')
    (tmp_path / 'junk.db3').write_bytes(b'\x00' * 4096)
    with pytest.raises(BagError, match='cannot open bag'):
        BagReader(tmp_path / 'junk.db3')
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(BagError, match='not a bag'):
        BagReader(tmp_path / 'notes.txt')


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_truncated_bag_is_read_up_to_the_damage(tmp_path, storage):
    bag = tmp_path / 'bag'
    frames = _make_bag(bag, storage, n=40, size=(96, 64))       # ~18 KB per message
    data = _storage_file(bag)
    data.write_bytes(data.read_bytes()[:int(data.stat().st_size * 0.6)])
    with BagReader(bag) as r:
        assert any('did not open normally' in w for w in r.warnings)
        msgs = list(r.messages(['/cam']))
        assert r.damage is not None
        assert 10 < len(msgs) < 40 and r.damage.messages_read == len(msgs)
        for i, m in enumerate(msgs):                           # the good part is intact and in order
            assert np.array_equal(decode_message(m.msg), frames[i])
        text = r.damage.describe(r.start_ns)
        assert f'after message {len(msgs)}' in text and f't = {(len(msgs) - 1) * 0.1:.3f} s' in text


def test_missing_metadata_is_read_from_the_storage_file(tmp_path):
    bag = tmp_path / 'bag'
    _make_bag(bag, 'mcap', n=5)
    (bag / 'metadata.yaml').unlink()
    with BagReader(bag) as r:
        assert any('metadata.yaml is missing' in w for w in r.warnings)
        assert len(list(r.messages(['/cam']))) == 5 and r.damage is None


def test_ros1_bag(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    Image, Header, Time = (store.types[t] for t in ('sensor_msgs/msg/Image', 'std_msgs/msg/Header',
                                                    'builtin_interfaces/msg/Time'))
    with Writer(tmp_path / 'old.bag') as w:
        conn = w.add_connection('/cam', 'sensor_msgs/msg/Image', typestore=store)
        for i in range(3):
            msg = Image(header=Header(seq=i, stamp=Time(sec=10 + i, nanosec=5), frame_id='cam'), height=2, width=2,
                        encoding='rgb8', is_bigendian=0, step=6, data=np.arange(12, dtype=np.uint8) + i)
            w.write(conn, (10 + i) * 10**9, store.serialize_ros1(msg, 'sensor_msgs/msg/Image'))
    with BagReader(tmp_path / 'old.bag') as r:
        assert r.storage == 'ros1'
        msgs = list(r.messages(['/cam']))
        assert [bag_io.stamp_ns(m.msg) for m in msgs] == [(10 + i) * 10**9 + 5 for i in range(3)]
        assert decode_message(msgs[2].msg)[0, 0].tolist() == [4, 3, 2]
        cdr = [m.msg for m in r.messages(['/cam'], deserialize=False)]   # ROS 2 CDR for republishing
        assert bag_io.stamp_ns(r.deserialize(cdr[1], msgs[1].msgtype)) == 11 * 10**9 + 5


# --------------------------------------------------------------------------- report on synthetic results

def _face(fid: str, expr: str) -> FaceResult:
    p = np.full(7, 0.01, np.float32)
    p[EXPRESSIONS.index(expr)] = 0.94
    return FaceResult(fid, (10.0, 20.0, 40.0, 50.0), expr, 0.94, p, p, 0.3, 0.2, 0.9)


def _synthetic_records() -> list[FrameRecord]:
    records = []
    for i in range(20):
        faces = [_face('f1', 'happy' if i % 4 else 'sad')] if i >= 2 else []
        if 8 <= i < 14:
            faces.append(_face('f2', 'surprised'))
        commands = [Command('CONFIRM', 50, 'f1', 'happy', 0.9, stamp=100 + i * 0.1)] if i == 5 else []
        result = FrameResult(100 + i * 0.1, EXPRESSIONS, faces, commands,
                             {'detect': 10.0 + i, 'preprocess': 1.0, 'infer': 2.0, 'track': 0.2, 'total': 13.2 + i},
                             len(faces))
        records.append(FrameRecord(i, i * 0.1, int((100 + i * 0.1) * 1e9), result, timing_ms={'decode': 0.5}))
    records.append(FrameRecord(20, 2.0, int(102e9), None, 'decode_error', 'bad jpeg'))
    return records


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def _assert_consistent(out: Path, report: dict) -> list[dict]:
    """The confusion matrix in report.json is what the per-frame CSV's scored rows count."""
    rows = list(csv.DictReader(open(out / FILES['frames_csv'])))
    conf = confusion_from_rows(rows)
    assert conf.matrix.tolist() == report['confusion']['matrix']
    assert conf.total == report['counts']['scored']
    for r in rows:
        if r['scored'] == '1':
            assert r['correct'] == str(int(r['expression'] == r['label']))
    return rows


def test_report_files_on_synthetic_results(tmp_path):
    labels = Labels.from_csv(_write(tmp_path, '0,1.0,happy\n0.8,1.2,surprised,f2\n'))
    report = write_report(tmp_path / 'out', _synthetic_records(), labels,
                          RunInfo('bag', '/cam', 'sensor_msgs/msg/Image', 'mcap', wall_s=2.0))
    out = tmp_path / 'out'
    for name in PLOTS:
        _assert_png(out / FILES[name])
    c = report['counts']
    assert (c['frames'], c['processed'], c['decode_errors']) == (21, 20, 1)
    # [0, 1.0): frames 0..9 -> f1 everywhere (2 misses, sad at 4 and 8); [0.8, 1.2) f2: frames 8..11
    assert (c['scored'], c['missed'], c['correct']) == (14, 2, 10)
    assert report['per_class']['happy']['support'] == 10 and report['per_class']['surprised']['recall'] == 1.0
    assert report['commands']['counts'] == {'CONFIRM': 1}
    assert report['latency_ms']['decode']['n'] == 20 and report['throughput']['frames_per_s'] == 10.5
    assert json.loads((out / FILES['json']).read_text())['counts'] == c
    rows = _assert_consistent(out, report)
    assert sum(r['status'] == 'decode_error' for r in rows) == 1
    assert 'Accuracy **71.4 %**' in (out / FILES['markdown']).read_text()


def test_report_without_labels_has_no_confusion_matrix(tmp_path):
    report = write_report(tmp_path, _synthetic_records(), None, RunInfo('bag', '/cam'))
    assert report['accuracy'] is None and report['counts']['scored'] == 0
    assert not (tmp_path / FILES['confusion_matrix']).exists()
    for name in PLOTS[2:]:
        _assert_png(tmp_path / FILES[name])


# --------------------------------------------------------------------------- the CLI on real bags

@pytest.fixture(scope='module')
def sample_frames():
    return [frame for frame, _ in make_bag.sample_sequence(SMALL)]


def _sample_bag(tmp_path: Path, frames, storage: str, fmt: str) -> tuple[Path, Path, str]:
    bag = tmp_path / f'sample_{storage}'
    make_bag.write_bag(((f, None) for f in frames), bag, storage=storage, fmt=fmt, rate=make_bag.SAMPLE_RATE_HZ,
                       start_ns=make_bag.SAMPLE_START_NS, progress=False)
    labels = _write(tmp_path, make_bag.sample_labels_csv(), 'sample_labels.csv')
    return bag, labels, make_bag.default_topic(fmt)


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize('storage, fmt', [('sqlite3', 'raw'), ('mcap', 'compressed')])
def test_offline_evaluation_counts(tmp_path, sample_frames, storage, fmt, capsys):
    bag, labels, topic = _sample_bag(tmp_path, sample_frames, storage, fmt)
    out = tmp_path / 'report'
    assert eval_bag.main([str(bag), '--topic', topic, '--labels', str(labels), '--out', str(out),
                          '--no-progress']) == 0
    assert 'Report:' in capsys.readouterr().out
    report = json.loads((out / FILES['json']).read_text())
    segments = make_bag.SAMPLE_SEGMENTS
    n_frames = sum(s.frames for s in segments)
    labelled = sum(s.frames for s in segments if s.label)
    c = report['counts']
    assert (c['frames'], c['processed'], c['labelled_frames']) == (n_frames, n_frames, labelled)
    assert c['unlabelled_frames'] == n_frames - labelled
    # one face per labelled frame: each is scored once, found or missed
    assert c['scored'] == labelled
    assert report['input']['storage'] == storage and report['input']['frames_on_topic'] == n_frames
    rows_true = report['confusion']['rows_true']
    matrix = np.array(report['confusion']['matrix'])
    for s in segments:
        if s.label:
            assert matrix[rows_true.index(s.label)].sum() == s.frames
    assert matrix.sum() == labelled
    # the smiling astronaut is recognised as happy once her track is confirmed
    assert matrix[rows_true.index('happy'), rows_true.index('happy')] >= 7
    rows = _assert_consistent(out, report)
    assert {int(r['frame']) for r in rows} == set(range(n_frames))
    # the two-person segment gives two faces per frame once both tracks are confirmed
    two = [r for r in rows if int(r['frame']) >= n_frames - 4]
    assert all(r['num_faces'] == '2' for r in two) and len({r['face_id'] for r in two}) == 2
    for name in PLOTS:
        _assert_png(out / FILES[name])
    assert report['throughput']['frames_per_s'] > 0 and report['latency_ms']['total']['n'] == n_frames


@needs_model
@pytest.mark.slow
def test_truncated_bag_is_evaluated_up_to_the_damage(tmp_path, sample_frames, capsys):
    bag, _, topic = _sample_bag(tmp_path, sample_frames[:12], 'mcap', 'raw')
    data = _storage_file(bag)
    data.write_bytes(data.read_bytes()[:int(data.stat().st_size * 0.55)])
    out = tmp_path / 'report'
    assert eval_bag.main([str(bag), '--topic', topic, '--label', 'happy', '--out', str(out), '--no-progress']) == 1
    err = capsys.readouterr().err
    report = json.loads((out / FILES['json']).read_text())
    n = report['counts']['frames']
    assert 3 <= n < 12
    assert f'reading stopped after message {n}' in err and f'evaluated the {n} frames before it' in err
    assert f'after message {n}' in report['damage']


@needs_model
def test_cli_errors(tmp_path, capsys):
    bag = tmp_path / 'bag'
    _make_bag(bag, 'mcap', n=2, extra_string=True)

    def run(*args) -> str:
        assert eval_bag.main([*map(str, args), '--out', str(tmp_path / 'o'), '--no-progress']) == 2
        return capsys.readouterr().err

    err = run(bag, '--topic', '/camera/image_raw')
    assert "topic '/camera/image_raw' is not in the bag" in err and '/cam  [sensor_msgs/msg/Image]' in err
    assert 'std_msgs/msg/String, which is not supported' in run(bag, '--topic', '/chatter')
    assert 'no such file or directory' in run(tmp_path / 'nothing', '--topic', '/cam')
    (tmp_path / 'junk.mcap').write_bytes(b'junk' * 100)
    assert 'cannot open bag' in run(tmp_path / 'junk.mcap', '--topic', '/cam')
    labels = _write(tmp_path, '0,1,happy\n1,x,sad\n')
    assert f"{labels}: row 2: end_s 'x' is not a number" in run(bag, '--topic', '/cam', '--labels', labels)
    assert 'unknown parameter' in run(bag, '--topic', '/cam', '--param', 'no_such_param=1')
    assert 'no such file' in run(bag, '--topic', '/cam', '--model', tmp_path / 'none.onnx')
    assert '--speed must be > 0' in run(bag, '--topic', '/cam', '--mode', 'live', '--speed', '0')


@needs_model
def test_undecodable_frame_is_reported_not_fatal(tmp_path, capsys):
    store = bag_types.make_typestore()
    bag = tmp_path / 'bag'
    good = cv2.imencode('.jpg', np.full((48, 64, 3), 128, np.uint8))[1]
    with BagWriter(bag, 'sqlite3', store) as w:
        w.add_topic('/cam/compressed', bag_types.COMPRESSED_IMAGE)
        for i, data in enumerate([good, np.frombuffer(b'garbage!', np.uint8), good]):
            header = store.types['std_msgs/msg/Header'](
                stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=i * 1000), frame_id='c')
            w.write('/cam/compressed', 10**9 + i * 1000,
                    store.types[bag_types.COMPRESSED_IMAGE](header=header, format='jpeg', data=data))
    out = tmp_path / 'o'
    assert eval_bag.main([str(bag), '--topic', '/cam/compressed', '--out', str(out), '--no-progress']) == 1
    assert '1 frame(s) did not decode' in capsys.readouterr().err
    rows = list(csv.DictReader(open(out / FILES['frames_csv'])))
    assert [r['status'] for r in rows] == ['ok', 'decode_error', 'ok'] and 'does not decode' in rows[1]['error']


def test_params_file_and_overrides(tmp_path):
    params = _write(tmp_path, '/**:\n  ros__parameters:\n    tracker_min_hits: 3\n'
                              'fer_node:\n  ros__parameters:\n    smoothing: window\n', 'p.yaml')
    values = offline.node_parameters(str(params), offline.parse_overrides(['smoothing_window_s=0.3', 'backend=torch']))
    assert (values['tracker_min_hits'], values['smoothing'], values['smoothing_window_s'], values['backend']) == \
        (3, 'window', 0.3, 'torch')
    from fer_ros.settings import params as node_params
    assert offline.node_parameters(None, {}) == node_params.validate_all({})   # no file: the table's defaults
    with pytest.raises(offline.EvalError, match='tracker_min_hits'):
        offline.node_parameters(str(params), {'tracker_min_hits': '0'})
    with pytest.raises(offline.EvalError, match='NAME=VALUE'):
        offline.parse_overrides(['oops'])
    with pytest.raises(offline.EvalError, match='no "fer_node: ros__parameters:"'):
        offline.read_params_file(str(_write(tmp_path, 'other:\n  ros__parameters: {}\n', 'q.yaml')))


def test_committed_sample_bag_opens():
    sample = Path(__file__).resolve().parents[1] / 'assets' / 'sample_bag'
    with BagReader(sample / 'fer_sample') as r:
        info = r.require_topic('/camera/image_raw/compressed')
        assert info.count == sum(s.frames for s in make_bag.SAMPLE_SEGMENTS)
