"""fer-export: checkpoint -> ONNX with provenance metadata; ONNX checker; ONNX Runtime vs PyTorch."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip('torch')
onnx = pytest.importorskip('onnx')
import onnxruntime as ort

from fer_ros.backends.onnxruntime_backend import read_onnx_spec
from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.spec import ModelSpec
from fer_ros.models import checkpoint, create_model
from fer_ros.models.onnx_export import export_onnx
from fer_ros.tools.export import export_checkpoint
from fer_ros.tools.export import main as export_main
from training.config import load_config
from training.train import run


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 1-epoch tiny light_ntwrn run on the synthetic set (same code path as a real run)."""
    out = tmp_path_factory.mktemp('run')
    cfg = load_config(None, [
        'data.format=synthetic', 'data.synthetic_per_class=8', 'model.name=light_ntwrn',
        'model.kwargs={stem_channels: 8, widths: [8, 16, 32], depths: [1, 1, 1], ds_multiplier: [1, 1, 2]}',
        'train.epochs=1', 'train.batch_size=16', 'train.workers=0', 'train.threads=1', 'train.progress=false',
        f'train.output={out}'])
    run(cfg)
    return out / 'last.pt'


def test_export_writes_spec_and_provenance(trained, tmp_path, capsys):
    out = tmp_path / 'model.onnx'
    assert export_main([str(trained), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'ONNX checker passed' in printed and 'max |ONNX Runtime - PyTorch|' in printed
    spec = read_onnx_spec(str(out))
    ckpt = checkpoint.load(str(trained))
    assert spec.name == 'light_ntwrn' and spec.labels == EXPRESSIONS
    assert (spec.channels, spec.height, spec.width) == (3, 48, 48)
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5) and spec.output == 'probabilities'
    x = spec.extra
    assert x['checkpoint_sha256'] == hashlib.sha256(trained.read_bytes()).hexdigest()
    assert x['training_dataset'] == 'synthetic' and x['split_mode'] == 'random' and 'random 70/30' in x['split']
    assert x['accuracy'] == ckpt['metrics']['test_acc'] and x['epoch'] == 1
    assert x['model_kwargs']['widths'] == [8, 16, 32] and x['params'] == ckpt['complexity']['params']
    onnx.checker.check_model(onnx.load(str(out)))


def test_onnx_matches_torch_with_dynamic_batch(trained, tmp_path):
    out = tmp_path / 'model.onnx'
    _, diff = export_checkpoint(str(trained), str(out))
    assert diff <= 1e-4
    ckpt = checkpoint.load(str(trained))
    m = ckpt['model']
    model = create_model(m['name'], num_classes=7, in_channels=3, **m['kwargs'])
    model.load_state_dict(ckpt['state_dict'])
    model.eval()
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert sess.get_inputs()[0].name == 'input' and sess.get_outputs()[0].name == 'probabilities'
    for n in (1, 3, 9):
        xb = np.random.default_rng(n).standard_normal((n, 3, 48, 48)).astype(np.float32)
        got = sess.run(None, {'input': xb})[0]
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(xb)), 1).numpy()
        assert got.shape == (n, 7)
        assert np.abs(got - ref).max() <= 1e-4
        assert np.allclose(got.sum(1), 1, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['light_ntwrn', 'wrn_scam_gbn'])
def test_full_size_variant_exports_within_tolerance(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    # non-trivial BN statistics, as after training (fresh BN is the identity)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    diff = export_onnx(model.train(), ModelSpec(name=name, mean=(0.5,) * 3, std=(0.5,) * 3),
                       str(tmp_path / f'{name}.onnx'), check_batches=(1, 2))
    assert diff <= 1e-4
    assert not model.training  # the export left the model in eval mode


def test_parity_failure_exits_1_and_leaves_no_file(trained, tmp_path, capsys):
    out = tmp_path / 'strict.onnx'
    code = export_main([str(trained), '--out', str(out), '--atol', '1e-30'])
    if code == 0:
        pytest.skip('ONNX Runtime matched PyTorch bit for bit: the failure path cannot be provoked')
    assert code == 1 and not out.exists()
    assert 'differs from PyTorch' in capsys.readouterr().err


def test_bad_checkpoints_are_named(tmp_path, capsys):
    assert export_main([str(tmp_path / 'none.pt'), '--out', str(tmp_path / 'x.onnx')]) == 2
    assert 'none.pt' in capsys.readouterr().err
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint')
    assert export_main([str(junk), '--out', str(tmp_path / 'x.onnx')]) == 2
    assert 'junk.pt: not a readable checkpoint' in capsys.readouterr().err
    other = tmp_path / 'other.pt'
    torch.save({'state_dict': {}}, other)
    assert export_main([str(other), '--out', str(tmp_path / 'x.onnx')]) == 2
    assert 'not a fer_ros training checkpoint' in capsys.readouterr().err
