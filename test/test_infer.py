"""fer-infer: one JSON object per image; bad files give error entries and a non-zero exit at the end."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.tools import infer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
ASSETS = os.path.join(REPO, 'assets')

pytestmark = pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX),
                                reason='models/mini_xception_fer2013.onnx not converted yet (make setup)')


def run(capsys, *args) -> tuple[int, list[dict], str]:
    code = infer.main(['--model', DEFAULT_ONNX, *args])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_good_images(capsys):
    code, lines, err = run(capsys, os.path.join(ASSETS, 'astronaut.jpg'), os.path.join(ASSETS, 'coffee.jpg'))
    assert code == 0 and err == ''
    astronaut, coffee = lines
    assert astronaut['image'].endswith('astronaut.jpg') and len(astronaut['faces']) == 1
    face = astronaut['faces'][0]
    assert set(face) == {'box', 'expression', 'confidence', 'probabilities'}
    assert face['expression'] == 'happy' and face['confidence'] > 0.9
    assert list(face['probabilities']) == list(EXPRESSIONS)
    assert abs(sum(face['probabilities'].values()) - 1) < 1e-3
    x, y, w, h = face['box']
    assert all(isinstance(v, int) for v in face['box']) and 150 < x < 210 and 40 < y < 90 and 70 < w < 110
    assert set(astronaut['timing_ms']) == {'detect', 'preprocess', 'infer', 'total'}
    assert coffee['faces'] == [] and coffee['timing_ms']['infer'] == 0


def test_faces_read_as_the_node_reads_them_with_the_mirrored_view(capsys):
    """fer-infer follows the model file's mirror_tta (on for the mini-Xception) as the node does, so the same
    face gets the same probabilities in both; --mirror-tta never gives the single view."""
    import cv2

    from fer_ros.backends import create_backend, create_face_detector
    from fer_ros.pipeline import PipelineConfig, analyze_frame
    path = os.path.join(ASSETS, 'scared_face.jpg')
    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    config = PipelineConfig(model_path=DEFAULT_ONNX, backend='cpu')
    detector, backend = create_face_detector(config.detector), create_backend(DEFAULT_ONNX, 'cpu')
    assert backend.spec.mirror_tta
    readings = {}
    for option, mirror in (('model', True), ('never', False)):
        _, (line,), _ = run(capsys, '--mirror-tta', option, path)
        expected = analyze_frame(frame, detector, backend, config.crop_margin, mirror=mirror).probabilities[0]
        readings[option] = [line['faces'][0]['probabilities'][label] for label in backend.labels]
        assert readings[option] == pytest.approx(expected.tolist(), abs=1e-3)
    assert readings['model'] != pytest.approx(readings['never'], abs=1e-3)


def test_bad_files_are_reported_and_the_rest_processed(capsys, tmp_path):
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG but not really')
    good = os.path.join(ASSETS, 'camera.jpg')
    code, lines, err = run(capsys, str(empty), good, str(broken), str(tmp_path / 'missing.jpg'))
    assert code == 1
    assert [line['image'] for line in lines] == [str(empty), good, str(broken), str(tmp_path / 'missing.jpg')]
    assert lines[0] == {'image': str(empty), 'error': 'empty file'}
    assert len(lines[1]['faces']) == 1
    assert 'not a decodable image' in lines[2]['error']
    assert lines[3]['error'] == 'no such file'
    assert '3 of 4' in err


def test_haar_detector_option(capsys):
    code, lines, _ = run(capsys, '--detector', 'haar', os.path.join(ASSETS, 'astronaut.jpg'))
    assert code == 0 and len(lines[0]['faces']) == 1


def test_unloadable_model_exits_2(capsys, tmp_path):
    assert infer.main(['--model', str(tmp_path / 'none.onnx'), os.path.join(ASSETS, 'astronaut.jpg')]) == 2
    captured = capsys.readouterr()
    assert captured.out == '' and 'none.onnx' in captured.err


def test_command_line_exit_status_and_stdout_is_pure_json(tmp_path):
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'')
    out = subprocess.run([sys.executable, '-m', 'fer_ros.tools.infer', '--model', DEFAULT_ONNX,
                          os.path.join(ASSETS, 'astronaut.jpg'), str(bad)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]['faces'][0]['expression'] == 'happy' and 'error' in lines[1]


def test_decompression_bomb_is_refused_and_the_batch_goes_on(capsys, tmp_path):
    from image_bombs import png_bomb
    bomb = tmp_path / 'bomb.png'
    bomb.write_bytes(png_bomb(20000, 20000))
    good = os.path.join(ASSETS, 'astronaut.jpg')
    code, lines, err = run(capsys, str(bomb), good)
    assert code == 1
    assert '20000x20000' in lines[0]['error'] and 'not decoded' in lines[0]['error']
    assert len(lines[1]['faces']) == 1
