"""fer-train: train a registered model on FER2013, CK+, JAFFE or folder data.

    fer-train --config training/configs/fer2013.yaml [--set train.epochs=10 ...] [--output DIR]
    fer-train --config ... --resume auto            # continue the run in --output exactly
    torchrun --nproc_per_node=4 -m training.train --config ...   # DDP, same config

Defaults follow the paper's Table 4 (SGD, momentum 0.9, lr 0.01 halved every 50 epochs,
cross-entropy, 300 epochs). The run folder gets: last.pt (every epoch), best.pt (when there is a
validation split), metrics.csv (one row per epoch), train.log, split.json, and at the end
results.json / results.md (accuracy, per-class recall), confusion.png and curves.png.
Only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.models import checkpoint, create_model
from fer_ros.models.complexity import complexity, format_count
from training import distributed, rng
from training.config import Config, load_config
from training.datasets import DatasetError, FaceSet, load_dataset
from training.distributed import DistInfo
from training.loaders import eval_loader, train_loader
from training.metrics import append_csv, confusion_matrix, plot_confusion, plot_curves, recall_table, summarize
from training.splits import Split, describe, make_split

# config keys that may change when resuming (they do not change what is computed)
_RESUME_MAY_CHANGE = ('train.epochs', 'train.workers', 'train.device', 'train.progress', 'train.output',
                      'train.eval_batch_size', 'train.threads', 'train.eval_every', 'data.path')


class _Log:
    """print() on rank 0, mirrored into <output>/train.log."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def __call__(self, msg: str) -> None:
        if self.path is None:
            return
        print(msg, flush=True)
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(msg + '\n')


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(cfg: Config) -> nn.Module:
    return create_model(cfg.model.name, num_classes=len(EXPRESSIONS), in_channels=cfg.model.in_channels,
                        **cfg.model.kwargs)


def _flat(d: dict, prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != 'kwargs':
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def _check_resumable(saved: dict, cfg: Config, path: str) -> None:
    old, new = _flat(saved), _flat(cfg.to_dict())
    changed = [k for k in sorted(set(old) | set(new))
               if k not in _RESUME_MAY_CHANGE and old.get(k) != new.get(k)]
    if changed:
        detail = ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)
        raise ValueError(f'{path}: cannot resume, the configuration changed ({detail}); only '
                         f'{", ".join(_RESUME_MAY_CHANGE)} may differ')


@torch.no_grad()
def evaluate(model: nn.Module, loader, info: DistInfo, amp_dtype, channels_last: bool
             ) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, confusion matrix int64[K, K]) over every process's slice."""
    model.eval()
    k = len(EXPRESSIONS)
    cm = torch.zeros(k * k, dtype=torch.int64)
    loss_sum = torch.zeros(1, dtype=torch.float64)
    for x, y in loader:
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=info.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction='sum').item()
        cm += torch.from_numpy(confusion_matrix(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), k).ravel())
    cm = distributed.all_reduce_sum(cm, info)
    loss_sum = distributed.all_reduce_sum(loss_sum, info)
    n = int(cm.sum())
    return (float(loss_sum) / n if n else float('nan')), cm.view(k, k).numpy()


def _dataset_info(cfg: Config, faces: FaceSet, split: Split) -> dict[str, Any]:
    return {'format': cfg.data.format, 'path': os.path.abspath(cfg.data.path) if cfg.data.path else '',
            'name': faces.name, 'num_images': len(faces), 'class_counts': faces.class_counts(),
            'dropped': dict(faces.dropped), 'split': split.info, 'split_text': describe(split),
            'augment': {'erasing': cfg.augment.erasing.enabled, 'expansion': cfg.augment.expansion.enabled}}


def run(cfg: Config, resume: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the final results dict (also written to results.json).

    resume: a checkpoint path, or 'auto' for <output>/last.pt when it exists.
    Raises:
        ValueError / FileNotFoundError / DatasetError: bad configuration or data (named).
    """
    owner = not torch.distributed.is_initialized()  # a caller (fer-ablation) may hold the group
    info = distributed.setup(cfg.train.device)
    try:
        return _run(cfg, info, resume, overwrite)
    finally:
        if owner:
            distributed.cleanup(info)


def _run(cfg: Config, info: DistInfo, resume: str | None, overwrite: bool) -> dict[str, Any]:
    t = cfg.train
    out = t.output
    last_path, best_path = os.path.join(out, 'last.pt'), os.path.join(out, 'best.pt')
    if resume == 'auto':
        resume = last_path if os.path.exists(last_path) else None
    if resume is None and os.path.exists(last_path) and not overwrite:
        raise ValueError(f'{out} already holds a run (last.pt): continue it with --resume auto, start over '
                         'with --overwrite, or choose another --output')
    main = info.is_main
    if main:
        os.makedirs(out, exist_ok=True)
        if resume is None:
            for name in ('metrics.csv', 'train.log', 'best.pt'):
                if os.path.exists(os.path.join(out, name)):
                    os.remove(os.path.join(out, name))
    distributed.barrier(info)
    log = _Log(os.path.join(out, 'train.log') if main else None)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = not t.deterministic
    seed_everything(t.seed + info.rank)  # each process its own dropout stream

    faces = load_dataset(cfg, progress=main and t.progress)
    split = make_split(faces, cfg.split)
    log(f'[data] {faces.name}: {len(faces)} images, classes {faces.class_counts()}')
    log(f'[split] {describe(split)}')
    if 'warning' in split.info:
        log(f"[split] warning: {split.info['warning']}")

    model = build_model(cfg)
    size, channels = cfg.data.input_size, cfg.model.in_channels
    cx = complexity(model, (channels, size, size))
    log(f'[model] {cfg.model.name}: {format_count(cx.params)} params, {format_count(cx.macs)} MACs '
        f'({format_count(cx.flops)} FLOPs) at {channels}x{size}x{size}')
    device = info.device
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    if t.sync_bn and info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    o = cfg.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                                weight_decay=o.weight_decay, nesterov=o.nesterov)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    cuda = device.type == 'cuda'
    amp_dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(t.amp) if cuda else None
    if t.amp != 'off' and not cuda:
        log(f'[train] train.amp={t.amp} ignored: mixed precision is used on CUDA only')
    scaler = torch.amp.GradScaler('cuda', enabled=amp_dtype is torch.float16)

    start_epoch, history, best_val = 0, [], -1.0
    if resume:
        ckpt = checkpoint.load(resume)
        _check_resumable(ckpt['config'], cfg, resume)
        model.load_state_dict(ckpt['state_dict'])
        optimizer.load_state_dict(ckpt['optimizer'])
        scheduler.load_state_dict(ckpt['scheduler'])
        scaler.load_state_dict(ckpt['scaler'])
        start_epoch, history, best_val = ckpt['epoch'], list(ckpt['history']), ckpt['best_val_acc']
        if ckpt['world_size'] == info.world_size:
            rng.set_rng_state(ckpt['rng'][info.rank], device)
        else:
            log(f"[resume] saved with {ckpt['world_size']} process(es), now {info.world_size}: random "
                'streams are re-seeded, so the continuation is not bit-identical')
            seed_everything(t.seed + info.rank + 1000 * start_epoch)
        if main:  # the CSV is rebuilt from the checkpoint: rows past it (a crash) are dropped
            csv_path = os.path.join(out, 'metrics.csv')
            if os.path.exists(csv_path):
                os.remove(csv_path)
            for row in history:
                append_csv(csv_path, row)
        log(f'[resume] {resume}: {start_epoch} epoch(s) done, continuing to {t.epochs}')

    loader, train_ds, sampler = train_loader(faces, split.train, cfg, info)
    test_loader = eval_loader(faces, split.test, cfg, info)
    val_loader = eval_loader(faces, split.val, cfg, info) if len(split.val) else None
    log(f'[train] {t.epochs} epochs, batch {t.batch_size} x {info.world_size} process(es) on {device}, '
        f'{len(train_ds)} training samples per epoch ({len(loader)} steps per process)')
    dataset_info = _dataset_info(cfg, faces, split)
    if main:
        with open(os.path.join(out, 'split.json'), 'w', encoding='utf-8') as f:
            json.dump({'info': split.info, 'test_sources': [faces.sources[i] for i in split.test],
                       'val_sources': [faces.sources[i] for i in split.val]}, f)

    def payload(epoch: int, metrics: dict) -> dict[str, Any]:
        return {
            'format': checkpoint.FORMAT, 'epoch': epoch,
            'model': {'name': cfg.model.name, 'kwargs': dict(cfg.model.kwargs),
                      'in_channels': channels, 'num_classes': len(EXPRESSIONS)},
            'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
            'labels': list(EXPRESSIONS),
            'input': {'size': size, 'channels': channels, 'mean': list(cfg.data.mean),
                      'std': list(cfg.data.std)},
            'dataset': dataset_info, 'metrics': metrics, 'history': history, 'config': cfg.to_dict(),
            'complexity': {'params': cx.params, 'macs': cx.macs, 'input_size': list(cx.input_size)},
            'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'scaler': scaler.state_dict(), 'rng': rngs, 'world_size': info.world_size,
            'best_val_acc': best_val, 'torch_version': str(torch.__version__),
        }

    progress = main and t.progress
    test_cm = None
    best_state: tuple[dict, int] | None = None
    for epoch in range(start_epoch, t.epochs):
        net.train()
        train_ds.epoch = epoch
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]['lr']
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
        started = time.perf_counter()
        bar = loader
        if progress:
            from tqdm import tqdm
            bar = tqdm(loader, desc=f'epoch {epoch + 1}/{t.epochs}', unit='batch', leave=False,
                       dynamic_ncols=True, mininterval=1.0)
        for step, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            sums += torch.stack([loss.detach().double() * y.numel(), (logits.argmax(1) == y).sum().double(),
                                 torch.tensor(float(y.numel()), dtype=torch.float64, device=device)])
            if progress and step % 10 == 0:
                s = sums.tolist()
                bar.set_postfix(loss=f'{s[0] / s[2]:.3f}', acc=f'{100 * s[1] / s[2]:.1f}%')
        scheduler.step()
        sums = distributed.all_reduce_sum(sums.cpu(), info)
        elapsed = time.perf_counter() - started
        train_loss = float(sums[0] / sums[2])
        if not math.isfinite(train_loss):
            raise FloatingPointError(f'epoch {epoch + 1}: training loss is {train_loss}; lower optim.lr '
                                     '(or use train.amp=off)')
        row: dict[str, Any] = {'epoch': epoch + 1, 'lr': lr, 'train_loss': round(train_loss, 6),
                               'train_acc': round(float(sums[1] / sums[2]), 6), 'val_loss': '', 'val_acc': '',
                               'test_loss': '', 'test_acc': '', 'epoch_time_s': round(elapsed, 3),
                               'train_images_per_s': round(float(sums[2]) / elapsed, 2)}
        last = epoch + 1 == t.epochs
        metrics: dict[str, Any] = {'epoch': epoch + 1, 'train_acc': row['train_acc']}
        if (epoch + 1) % t.eval_every == 0 or last:
            if val_loader is not None:
                vl, vcm = evaluate(model, val_loader, info, amp_dtype, t.channels_last)
                row['val_loss'], row['val_acc'] = round(vl, 6), round(float(np.trace(vcm) / vcm.sum()), 6)
                metrics['val_acc'] = row['val_acc']
            tl, test_cm = evaluate(model, test_loader, info, amp_dtype, t.channels_last)
            row['test_loss'], row['test_acc'] = round(tl, 6), round(float(np.trace(test_cm) / test_cm.sum()), 6)
            metrics['test_acc'] = row['test_acc']
            metrics['test_mean_class_recall'] = round(summarize(test_cm, EXPRESSIONS)['mean_class_recall'], 6)
        history.append(row)
        improved = val_loader is not None and row['val_acc'] != '' and row['val_acc'] > best_val
        if improved:
            best_val = row['val_acc']
            # every process holds the same weights: keep the best in memory, no shared-file read later
            best_state = ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch + 1)
        rngs = distributed.all_gather_object(rng.rng_state(device), info)
        if main:
            ckpt = payload(epoch + 1, metrics)
            checkpoint.save(ckpt, last_path)
            if improved:
                checkpoint.save(ckpt, best_path)
            append_csv(os.path.join(out, 'metrics.csv'), row)
            parts = [f"epoch {epoch + 1}/{t.epochs} lr {lr:.5g} train loss {row['train_loss']:.4f} "
                     f"acc {100 * row['train_acc']:.2f}%"]
            if row['val_acc'] != '':
                parts.append(f"val acc {100 * row['val_acc']:.2f}%")
            if row['test_acc'] != '':
                parts.append(f"test loss {row['test_loss']:.4f} acc {100 * row['test_acc']:.2f}%")
            parts.append(f"{row['train_images_per_s']:.1f} img/s")
            log(' | '.join(parts))

    if test_cm is None:  # resumed a finished run: evaluate the stored weights once
        _, test_cm = evaluate(model, test_loader, info, amp_dtype, t.channels_last)
    results: dict[str, Any] = {
        'model': cfg.model.name, 'params': cx.params, 'macs': cx.macs, 'flops': cx.flops,
        'input_size': [channels, size, size], 'dataset': dataset_info, 'epochs': t.epochs,
        'final': summarize(test_cm, EXPRESSIONS),
    }
    if best_state is None and val_loader is not None and resume:
        best_state = _best_from_disk(best_path, info)
    if best_state is not None:
        model.load_state_dict(best_state[0])
        _, best_cm = evaluate(model, test_loader, info, amp_dtype, t.channels_last)
        results['best_val'] = {'epoch': best_state[1], 'val_acc': best_val,
                               'test': summarize(best_cm, EXPRESSIONS)}
    if main:
        _write_results(out, results, history, log)
    distributed.barrier(info)
    return results


def _best_from_disk(path: str, info: DistInfo) -> tuple[dict, int] | None:
    """Rank 0's best.pt weights on every process (a resumed run whose best epoch came earlier)."""
    state = None
    if info.is_main and os.path.exists(path):
        best = checkpoint.load(path)
        state = (best['state_dict'], best['epoch'])
    return distributed.broadcast_object(state, info)


def _write_results(out: str, results: dict, history: list[dict], log: _Log) -> None:
    final = results['final']
    title = f"{results['model']} on {results['dataset']['name']} ({results['dataset']['split_text']})"
    with open(os.path.join(out, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    lines = [f'# {title}', '',
             f"Final model (epoch {results['epochs']}): test accuracy **{100 * final['accuracy']:.2f} %**, "
             f"mean class recall {100 * final['mean_class_recall']:.2f} %.", '', recall_table(final), '']
    if 'best_val' in results:
        b = results['best_val']
        lines += [f"Best validation checkpoint (epoch {b['epoch']}, val acc {100 * b['val_acc']:.2f} %): "
                  f"test accuracy {100 * b['test']['accuracy']:.2f} %.", '']
    with open(os.path.join(out, 'results.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    plot_confusion(np.array(final['confusion_matrix']), EXPRESSIONS, os.path.join(out, 'confusion.png'),
                   f"{results['model']}: test accuracy {100 * final['accuracy']:.2f} %")
    plot_curves(history, os.path.join(out, 'curves.png'), title)
    log('')
    log(f"[result] {title}")
    log(f"[result] test accuracy {100 * final['accuracy']:.2f} % on {final['num_images']} images")
    log(recall_table(final))
    log(f'[result] files in {out}: last.pt, metrics.csv, results.json, results.md, confusion.png, curves.png'
        + (', best.pt' if 'best_val' in results else ''))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fer-train', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', required=True, help='YAML config (see training/configs/)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value, e.g. --set train.epochs=10 (repeatable)')
    p.add_argument('--output', help='run folder (overrides train.output)')
    p.add_argument('--resume', metavar='CKPT|auto', help="continue from a checkpoint ('auto': <output>/last.pt)")
    p.add_argument('--overwrite', action='store_true', help='start over in an output folder that holds a run')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.output:
            cfg.train.output = args.output
        if args.no_progress:
            cfg.train.progress = False
        run(cfg, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, DatasetError, FloatingPointError) as exc:
        print(f'fer-train: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
