"""Model benchmark: params, MACs, CPU training throughput and ONNX Runtime latency per variant.

    python -m benchmarks.models [--threads 2] [--json bench/models.json]

For every Table 5 variant (wrn, wrn_scam, wrn_scam_gbn, light_ntwrn) at 3x48x48 and, when the
name is registered, the FER2013 mini-Xception baseline (create_model('mini_xception',
in_channels=1) at 1x64x64):
- params and MACs (Conv2d + Linear multiply-accumulates; FLOPs = 2 x MACs),
- CPU training throughput: SGD steps (forward, cross-entropy, backward, update) on random batches
  of --train-batch images (the paper's FER2013 batch, 30); images/s of each timed step,
- ONNX Runtime (CPU) latency of the exported model (random weights, softmax appended) for batch 1
  and batch 32: median / p90 / p99 milliseconds per call.
Timings depend on the machine and its load: compare rows of one run, not across machines.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

from fer_ros.util.stats import summary

VARIANTS = ('wrn', 'wrn_scam', 'wrn_scam_gbn', 'light_ntwrn')
BASELINE = 'mini_xception'


def train_throughput(model, shape: tuple[int, int, int], batch: int, steps: int, warmup: int) -> dict:
    """images/s per SGD step (median, p90 and p99 of the per-step rates; p90 = the faster tail)."""
    import torch
    import torch.nn.functional as F

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen)
    y = torch.randint(0, 7, (batch,), generator=gen)
    rates = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            rates.append(batch / (time.perf_counter() - t0))
    return summary(rates)


def onnx_latency(path: str, shape: tuple[int, int, int], batch: int, iterations: int, warmup: int,
                 threads: int) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    times = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - t0))
    stats = summary(times)
    stats['images_per_s'] = batch * 1000.0 / stats['median']
    return stats


def bench_model(name: str, in_channels: int, size: int, args: argparse.Namespace, tmp: str) -> dict:
    import torch

    from fer_ros.core.spec import ModelSpec
    from fer_ros.models import create_model
    from fer_ros.models.complexity import complexity
    from fer_ros.models.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels)
    shape = (in_channels, size, size)
    cx = complexity(model, shape)
    row = {'model': name, 'input': list(shape), 'params': cx.params, 'macs': cx.macs, 'flops': cx.flops}
    print(f'[bench] {name}: {cx.params / 1e6:.2f} M params, {cx.macs / 1e9:.3f} GMACs; training ...',
          flush=True)
    row['train_images_per_s'] = train_throughput(model, shape, args.train_batch, args.train_steps,
                                                 args.train_warmup)
    spec = ModelSpec(name=name, height=size, width=size, channels=in_channels,
                     mean=(0.5,) * in_channels, std=(0.5,) * in_channels)
    path = os.path.join(tmp, f'{name}.onnx')
    row['onnx_parity_max_abs_diff'] = export_onnx(model, spec, path)
    row['onnx_mb'] = os.path.getsize(path) / 1e6
    for batch, iters in ((1, args.iterations), (32, args.iterations_batch)):
        print(f'[bench] {name}: ONNX Runtime batch {batch} ...', flush=True)
        row[f'ort_b{batch}_ms'] = onnx_latency(path, shape, batch, iters, args.warmup, args.threads)
    return row


def table(rows: list[dict]) -> str:
    lines = ['| model | input | params (M) | GMACs | GFLOPs | train img/s (median) | ORT b1 ms median / p90 / p99 '
             '| ORT b32 ms median / p90 / p99 | ORT b32 img/s |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        b1, b32 = r['ort_b1_ms'], r['ort_b32_ms']
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.3f} | "
            f"{r['flops'] / 1e9:.3f} | {r['train_images_per_s']['median']:.1f} | "
            f"{b1['median']:.1f} / {b1['p90']:.1f} / {b1['p99']:.1f} | "
            f"{b32['median']:.0f} / {b32['p90']:.0f} / {b32['p99']:.0f} | {b32['images_per_s']:.0f} |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='bench_models', description=__doc__.split('\n\n')[0])
    p.add_argument('--models', default=','.join(VARIANTS), help='comma-separated registered variants')
    p.add_argument('--threads', type=int, default=2, help='torch and ONNX Runtime CPU threads (default 2)')
    p.add_argument('--train-batch', type=int, default=30, help='training batch (paper FER2013: 30)')
    p.add_argument('--train-steps', type=int, default=5, help='timed training steps per model')
    p.add_argument('--train-warmup', type=int, default=1)
    p.add_argument('--iterations', type=int, default=100, help='timed ONNX Runtime calls at batch 1')
    p.add_argument('--iterations-batch', type=int, default=20, help='timed ONNX Runtime calls at batch 32')
    p.add_argument('--warmup', type=int, default=5, help='untimed ONNX Runtime calls first')
    p.add_argument('--no-baseline', action='store_true', help='skip the mini-Xception baseline')
    p.add_argument('--json', help='also write the results here')
    args = p.parse_args(argv)
    for name in ('threads', 'train_batch', 'train_steps', 'iterations', 'iterations_batch'):
        if getattr(args, name) < 1:
            print(f'bench_models: error: --{name.replace("_", "-")} must be >= 1', file=sys.stderr)
            return 2

    import torch

    from fer_ros.models import list_models

    torch.set_num_threads(args.threads)
    registered = set(list_models())
    wanted = [m.strip() for m in args.models.split(',') if m.strip()]
    unknown = [m for m in wanted if m not in registered]
    if unknown:
        print(f'bench_models: error: unknown model(s) {unknown}; registered: {sorted(registered)}', file=sys.stderr)
        return 2
    jobs = [(m, 3, 48) for m in wanted]
    notes = []
    if not args.no_baseline:
        if BASELINE in registered:
            jobs.append((BASELINE, 1, 64))
        else:
            notes.append(f'{BASELINE} is not registered (the perception issue adds it): baseline skipped')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ch, size in jobs:
            rows.append(bench_model(name, ch, size, args, tmp))
    meta = {'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M'),
            'machine': f'{platform.machine()}, {os.cpu_count()} CPU(s), {platform.processor() or "cpu"}',
            'python': platform.python_version(), 'torch': torch.__version__, 'threads': args.threads,
            'train_batch': args.train_batch, 'notes': notes}
    try:
        import onnxruntime
        meta['onnxruntime'] = onnxruntime.__version__
        with open('/proc/loadavg', encoding='ascii') as f:
            meta['loadavg_at_end'] = f.read().split()[:3]
    except OSError:
        pass
    print()
    print(f"{meta['date_utc']} UTC, {meta['machine']}, torch {meta['torch']}, {args.threads} thread(s)")
    print(table(rows))
    for note in notes:
        print(f'note: {note}')
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'meta': meta, 'rows': rows}, f, indent=2)
        print(f'written: {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
