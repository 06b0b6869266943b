"""Training pipeline: config validation, improved random erasing statistics, expansion, exact
resume, the run folder's outputs, the ablation runner, torchrun DDP, and a real learning run."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from fer_ros.models import checkpoint
from training.ablation import main as ablation_main
from training.augment import Expansion, ImprovedRandomErasing, transform_box
from training.config import ErasingConfig, ExpansionConfig, load_config
from training.datasets import load_dataset
from training.loaders import FaceDataset
from training.splits import make_split
from training.synthetic import make_patterns
from training.train import main as train_main
from training.train import run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = ('model.kwargs={stem_channels: 8, widths: [8, 16, 32], depths: [1, 1, 1], '
              'ds_multiplier: [1, 1, 2], drop_rate: 0.2}')


def tiny_cfg(out, *extra):
    return load_config(None, ['data.format=synthetic', 'data.synthetic_per_class=10', 'model.name=light_ntwrn',
                              TINY_MODEL, 'train.epochs=2', 'train.batch_size=16', 'train.workers=0',
                              'train.threads=1', 'train.progress=false', 'optim.lr=0.05', f'train.output={out}',
                              *extra])


# ---------------------------------------------------------------- config

def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('optim:\n  lr: 0.01\n  lrate: 0.1\n')
    with pytest.raises(ValueError, match="unknown parameter 'optim.lrate'"):
        load_config(str(bad))
    for override, word in (('optim.lr=-1', 'optim.lr'), ('train.epochs=2.5', 'train.epochs'),
                           ('split.mode=kfold', 'split.mode'), ('data.face_box=[0.5, 0, 0.4, 1]', 'data.face_box'),
                           ('augment.erasing.sh=0.01', 'sl/sh'), ('model.in_channels=2', 'model.in_channels'),
                           ('data.mean=[0.5]', 'data.mean'), ('train.amp=on', 'train.amp')):
        with pytest.raises(ValueError, match=word.replace('.', r'\.')):
            load_config(None, ['data.path=x', override])
    with pytest.raises(ValueError, match='data.path'):
        load_config(None, ['data.format=fer2013'])


def test_shipped_configs_load_with_paper_defaults():
    for name in ('fer2013', 'ckplus', 'jaffe', 'folder', 'smoke'):
        load_config(os.path.join(REPO, 'training', 'configs', f'{name}.yaml'))
    cfg = load_config(os.path.join(REPO, 'training', 'configs', 'fer2013.yaml'))
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.step_size, cfg.optim.gamma) == (0.01, 0.9, 50, 0.5)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.split.test_fraction) == (300, 30, 0.3)
    e = cfg.augment.erasing
    assert (e.p, e.sl, e.sh, e.r1) == (0.5, 0.05, 0.3, 0.3)
    assert load_config(os.path.join(REPO, 'training', 'configs', 'ckplus.yaml')).train.batch_size == 20
    assert load_config(os.path.join(REPO, 'training', 'configs', 'jaffe.yaml')).train.batch_size == 40


# ---------------------------------------------------------------- improved random erasing

@pytest.mark.parametrize('size', [48, 200])
def test_erasing_area_aspect_and_anchor_statistics(size):
    cfg = ErasingConfig(p=1.0, sl=0.05, sh=0.3, r1=0.3)
    erase = ImprovedRandomErasing(cfg)
    box = (0.2, 0.1, 0.6, 0.5)
    rng = np.random.default_rng(0)
    rects = [erase.sample(size, size, box, rng) for _ in range(3000)]
    assert all(r is not None for r in rects)  # the face box leaves room: every draw fits
    top, left, h, w = (np.array(v, float) for v in zip(*rects))
    # rounding H_e, W_e to whole pixels moves area and ratio by at most half a pixel per side
    lo_area = (math.sqrt(cfg.sl * size * size) - 1) ** 2 / size ** 2 * 0.95
    area = h * w / size ** 2
    assert area.min() >= min(lo_area, cfg.sl) - 0.02 and area.max() <= cfg.sh + 2.5 / size
    ratio = h / w
    slack = 1.0 / (w.min() - 0.5) + 0.5 / w.min()
    assert ratio.min() >= cfg.r1 - slack and ratio.max() <= 1 / cfg.r1 + 3 * slack
    # the erase point lies in the face box (eq. 12) and the rectangle inside the image
    assert (left >= math.floor(box[0] * size)).all() and (left < box[2] * size).all()
    assert (top >= math.floor(box[1] * size)).all() and (top < box[3] * size).all()
    assert (left + w <= size).all() and (top + h <= size).all()
    # the draws cover the ranges, not one corner of them
    assert area.mean() == pytest.approx((cfg.sl + cfg.sh) / 2, abs=0.03)
    # r_e ~ U(r1, 1/r1) as in Zhong et al. (not log-uniform): P(r_e < 1) = (1 - r1) / (1/r1 - r1)
    assert np.mean(ratio < 1) == pytest.approx((1 - cfg.r1) / (1 / cfg.r1 - cfg.r1), abs=0.05)
    assert left.max() > box[0] * size + 0.7 * (box[2] - box[0]) * size


@pytest.mark.parametrize('p', [0.0, 0.3, 0.5, 1.0])
def test_erasing_probability_is_honoured(p):
    erase = ImprovedRandomErasing(ErasingConfig(p=p))
    rng = np.random.default_rng(1)
    n = 4000
    hits = sum(erase.sample(48, 48, (0.1, 0.1, 0.5, 0.5), rng) is not None for _ in range(n))
    assert abs(hits / n - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_erasing_changes_only_the_rectangle():
    erase = ImprovedRandomErasing(ErasingConfig(p=1.0, fill='constant', fill_value=1.0))
    img = np.zeros((48, 48, 3), np.float32)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    top, left, h, w = erase.sample(48, 48, (0, 0, 1, 1), rng_a)
    out = erase(img.copy(), (0, 0, 1, 1), rng_b)
    mask = np.zeros((48, 48), bool)
    mask[top:top + h, left:left + w] = True
    assert (out[mask] == 1.0).all() and (out[~mask] == 0.0).all()


def test_erasing_gives_up_when_nothing_fits():
    # a face box in the bottom-right corner: no rectangle of >= 5 % of the image fits from there
    erase = ImprovedRandomErasing(ErasingConfig(p=1.0, max_attempts=20))
    assert erase.sample(48, 48, (0.98, 0.98, 1.0, 1.0), np.random.default_rng(0)) is None


# ---------------------------------------------------------------- expansion

def test_expansion_identity_and_flip_move_the_face_box():
    ident = Expansion(ExpansionConfig(enabled=True, rotation=0, scale=[1, 1], shift=0, crop=1, flip=0,
                                      contrast=[1, 1]))
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 1), dtype=np.uint8)
    out, box = ident(img, np.array([0.1, 0.2, 0.5, 0.6], np.float32), np.random.default_rng(0))
    assert np.allclose(out[..., 0], img[..., 0] / 255.0, atol=1e-6)
    assert np.allclose(box, [0.1, 0.2, 0.5, 0.6], atol=1e-6)
    flip = np.array([[-1, 0, 47], [0, 1, 0], [0, 0, 1]], float)
    assert np.allclose(transform_box(np.array([0.1, 0.2, 0.5, 0.6]), flip, 48), [0.5 - 1 / 48, 0.2, 0.9 - 1 / 48, 0.6],
                       atol=1e-6)


def test_expansion_draws_vary_and_stay_in_range():
    exp = Expansion(ExpansionConfig(enabled=True, rotation=15, scale=[0.9, 1.1], shift=0.1, crop=0.85, flip=0.5,
                                    contrast=[0.7, 1.3]))
    img = make_patterns(1, 48)[0][0][:, :, None]
    rng = np.random.default_rng(2)
    outs = [exp(img, np.array([0.2, 0.2, 0.8, 0.8], np.float32), rng) for _ in range(20)]
    assert all(o.shape == (48, 48, 1) and o.min() >= 0 and o.max() <= 1 for o, _ in outs)
    assert all((b[2] > b[0]) and (b[3] > b[1]) for _, b in outs)
    assert len({round(float(o.sum()), 3) for o, _ in outs}) == 20


def test_training_samples_depend_only_on_seed_epoch_and_index(tmp_path):
    cfg = tiny_cfg(tmp_path, 'augment.expansion.enabled=true', 'augment.expansion.repeats=3')
    faces = load_dataset(cfg, progress=False)
    split = make_split(faces, cfg.split)
    a, b = FaceDataset(faces, split.train, cfg, train=True), FaceDataset(faces, split.train, cfg, train=True)
    assert len(a) == 3 * len(split.train)
    assert torch.equal(a[5][0], b[5][0])
    b.epoch = 1
    assert not torch.equal(a[5][0], b[5][0])
    test = FaceDataset(faces, split.test, cfg, train=False)
    x, y = test[0]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x, test[0][0])


# ---------------------------------------------------------------- runs

def _weights_equal(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.slow
def test_resume_continues_exactly_and_writes_the_outputs(tmp_path):
    """2 epochs in one go == 1 epoch, stop, resume for the 2nd (dropout, erasing, shuffling all seeded);
    the resumed half even uses DataLoader workers, which must not change anything."""
    full, part = tmp_path / 'full', tmp_path / 'part'
    run(tiny_cfg(full))
    run(tiny_cfg(part, 'train.epochs=1'))
    with pytest.raises(ValueError, match='already holds a run'):
        run(tiny_cfg(part, 'train.epochs=1'))
    with pytest.raises(ValueError, match='configuration changed.*optim.lr'):
        run(tiny_cfg(part, 'optim.lr=0.1'), resume='auto')
    results = run(tiny_cfg(part, 'train.workers=2'), resume='auto')
    a, b = checkpoint.load(str(full / 'last.pt')), checkpoint.load(str(part / 'last.pt'))
    assert a['epoch'] == b['epoch'] == 2
    assert _weights_equal(a['state_dict'], b['state_dict']) <= 1e-6
    assert _weights_equal(a['optimizer']['state'][0], b['optimizer']['state'][0]) <= 1e-6
    timing = ('epoch_time_s', 'train_images_per_s')
    strip = [{k: v for k, v in r.items() if k not in timing} for r in b['history']]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in a['history']]
    # the run folder
    for name in ('last.pt', 'metrics.csv', 'results.json', 'results.md', 'confusion.png', 'curves.png',
                 'train.log', 'split.json'):
        assert (part / name).stat().st_size > 0, name
    with open(part / 'metrics.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [r['epoch'] for r in rows] == ['1', '2'] and rows[0]['lr'] == '0.05'
    assert results['final']['num_images'] == 21 and set(results['final']['recall']) == set(a['labels'])
    assert b['dataset']['split']['mode'] == 'random' and b['input']['mean'] == [0.5, 0.5, 0.5]


@pytest.mark.slow
def test_loop_learns_a_procedural_7_class_set_from_a_fer2013_csv(tmp_path):
    """The learnability check: patterns generated here, written as a real FER2013 csv, a reduced
    light_ntwrn (same code, smaller widths) must reach >= 90 % on the held-out 30 %."""
    images, labels = make_patterns(60, 48, seed=7)
    csv_path = tmp_path / 'patterns.csv'
    with open(csv_path, 'w', encoding='utf-8') as f:
        f.write('emotion,pixels,Usage\n')
        for img, lab in zip(images, labels):
            f.write(f'{lab},"{" ".join(map(str, img.ravel()))}",Training\n')
    cfg = load_config(None, [
        'data.format=fer2013', f'data.path={csv_path}', 'model.name=light_ntwrn',
        'model.kwargs={stem_channels: 8, widths: [16, 32, 64], depths: [1, 1, 1], ds_multiplier: [1, 1, 2], '
        'drop_rate: 0.0}', 'split.mode=random', 'split.test_fraction=0.3', 'train.epochs=8', 'train.batch_size=30',
        'train.workers=0', 'train.threads=1', 'train.progress=false', 'optim.lr=0.05', 'optim.step_size=4',
        f'train.output={tmp_path / "run"}'])
    results = run(cfg)
    assert results['final']['num_images'] == 126
    assert results['final']['accuracy'] >= 0.90, results['final']


def test_validation_split_keeps_the_best_checkpoint(tmp_path):
    results = run(tiny_cfg(tmp_path, 'split.val_fraction=0.25'))
    best = checkpoint.load(str(tmp_path / 'best.pt'))
    assert best['metrics']['val_acc'] == max(r['val_acc'] for r in best['history'])
    assert results['best_val']['epoch'] == best['epoch']
    assert results['dataset']['split']['val'] > 0
    assert 0.0 <= results['best_val']['test']['accuracy'] <= 1.0


def test_cli_reports_bad_config_and_data(tmp_path, capsys):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text(f'data: {{format: fer2013, path: {tmp_path / "missing.csv"}}}\ntrain: {{output: {tmp_path}}}\n')
    assert train_main(['--config', str(cfg), '--no-progress']) == 2
    assert 'missing.csv' in capsys.readouterr().err
    assert train_main(['--config', str(cfg), '--set', 'optim.momentum=2']) == 2
    assert 'optim.momentum' in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_runner_table(tmp_path, capsys):
    assert ablation_main(['--config', os.path.join(REPO, 'training', 'configs', 'fer2013.yaml'), '--output',
                          str(tmp_path / 'cx'), '--no-train']) == 0
    text = (tmp_path / 'cx' / 'ablation.md').read_text()
    for row in ('| WRN |', '| WRN+RE |', '| WRN+RE+SCAM |', '| WRN+RE+SCAM+GBN |', '| Light-NTWRN (+DS) |'):
        assert row in text
    assert '| 18.62 | 18.35 | +1.5 % |' in text and '73.21' in text
    out = tmp_path / 'trained'
    args = ['--config', os.path.join(REPO, 'training', 'configs', 'smoke.yaml'), '--output', str(out),
            '--rows', 'wrn,light_ntwrn', '--set', 'train.epochs=1', '--set', 'data.synthetic_per_class=8',
            '--set', 'train.threads=1', '--set', 'train.progress=false', '--set', TINY_MODEL]
    assert ablation_main(args) == 0
    report = json.loads((out / 'ablation.json').read_text())
    assert set(report['rows']) == {'wrn', 'light_ntwrn'}
    assert all(0.0 <= r['accuracy'] <= 1.0 for r in report['rows'].values())
    assert (out / 'wrn' / 'results.json').exists() and (out / 'light_ntwrn' / 'confusion.png').exists()
    assert ablation_main(args) == 0  # finished rows are read back, not retrained
    assert 'finished earlier' in capsys.readouterr().out
    assert ablation_main(args[:4] + ['--rows', 'nope']) == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('torchrun') is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), 'torchrun')),
    reason='torchrun not installed (make setup installs torch, which has it)')
def test_torchrun_ddp_two_cpu_processes(tmp_path):
    """The unchanged entry point under torchrun (Gloo on CPU): 2 processes, rank 0 writes the files,
    every test image evaluated exactly once."""
    torchrun = shutil.which('torchrun') or os.path.join(os.path.dirname(sys.executable), 'torchrun')
    out = tmp_path / 'ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    cmd = [torchrun, '--standalone', '--nproc_per_node=2', '-m', 'training.train', '--config',
           os.path.join(REPO, 'training', 'configs', 'smoke.yaml'), '--output', str(out), '--no-progress',
           '--set', 'train.epochs=1', '--set', 'data.synthetic_per_class=10', '--set', 'train.threads=1',
           '--set', TINY_MODEL]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = checkpoint.load(str(out / 'last.pt'))
    assert ckpt['world_size'] == 2 and len(ckpt['rng']) == 2
    results = json.loads((out / 'results.json').read_text())
    assert results['final']['num_images'] == 21  # 30 % of 70, split across the two processes
    assert proc.stdout.count('[result] test accuracy') == 1  # only rank 0 reports
