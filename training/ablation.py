"""fer-ablation: train every row of the paper's Table 5 on one dataset and tabulate the results.

    fer-ablation --config training/configs/fer2013.yaml --output runs/ablation_fer2013
    fer-ablation --config ... --output DIR --no-train      # params / FLOPs table only

Rows (cumulative, as in the paper): WRN, WRN+RE, WRN+RE+SCAM, WRN+RE+SCAM+GBN, Light-NTWRN
(+DS). The config's model name and erasing switch are replaced per row; everything else (data,
split, schedule, model kwargs) is shared. Each row trains in DIR/<row>/ (an interrupted ablation
continues where it stopped: finished rows are kept, an unfinished row resumes from its last.pt).
DIR/ablation.md and DIR/ablation.json hold the table, next to the paper's numbers.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from dataclasses import dataclass

from fer_ros.models.complexity import complexity
from training import distributed
from training.config import Config, load_config
from training.datasets import DatasetError


@dataclass(frozen=True)
class Row:
    key: str                      # folder name
    label: str                    # Table 5 wording
    model: str                    # registered model
    erasing: bool                 # improved random erasing on
    paper_params_m: float
    paper_acc: dict[str, float]   # dataset format -> accuracy % (only where the paper's number is known)


ROWS = (
    Row('wrn', 'WRN', 'wrn', False, 18.35, {'fer2013': 69.60, 'ckplus': 95.38, 'jaffe': 91.42}),
    Row('wrn_re', 'WRN+RE', 'wrn', True, 18.35, {}),
    Row('wrn_re_scam', 'WRN+RE+SCAM', 'wrn_scam', True, 23.21, {}),
    Row('wrn_re_scam_gbn', 'WRN+RE+SCAM+GBN', 'wrn_scam_gbn', True, 15.72, {}),
    Row('light_ntwrn', 'Light-NTWRN (+DS)', 'light_ntwrn', True, 10.14,
        {'fer2013': 73.21, 'ckplus': 98.72, 'jaffe': 95.21}),
)


def row_config(base: Config, row: Row, output: str) -> Config:
    cfg = copy.deepcopy(base)
    cfg.model.name = row.model
    cfg.augment.erasing.enabled = row.erasing
    cfg.train.output = os.path.join(output, row.key)
    return cfg.validate()


def table(base: Config, results: dict[str, dict]) -> str:
    """Markdown table: ours vs the paper, one line per row."""
    fmt = base.data.format
    size, ch = base.data.input_size, base.model.in_channels
    head = [f'| Table 5 row | model | params (M) | paper params (M) | params vs paper | MACs (G) at {ch}x{size}x{size} '
            f'| FLOPs (G) | accuracy (%) | paper accuracy {fmt} (%) |',
            '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for row in ROWS:
        r = results.get(row.key)
        if r is None:
            continue
        params = r['params'] / 1e6
        acc = f"{100 * r['accuracy']:.2f}" if r.get('accuracy') is not None else '—'
        paper = row.paper_acc.get(fmt)
        head.append(f"| {row.label} | `{row.model}`{' + RE' if row.erasing else ''} | {params:.2f} | "
                    f'{row.paper_params_m:.2f} | {100 * (params / row.paper_params_m - 1):+.1f} % | '
                    f"{r['macs'] / 1e9:.3f} | {2 * r['macs'] / 1e9:.3f} | {acc} | "
                    f"{'—' if paper is None else f'{paper:.2f}'} |")
    return '\n'.join(head)


def run_ablation(base: Config, output: str, rows: list[Row], train: bool, overwrite: bool) -> dict[str, dict]:
    from training.train import build_model, run  # torch-heavy imports only when used

    results: dict[str, dict] = {}
    split_text = ''
    for row in rows:
        cfg = row_config(base, row, output)
        size, ch = cfg.data.input_size, cfg.model.in_channels
        cx = complexity(build_model(cfg), (ch, size, size))
        entry = {'model': row.model, 'erasing': row.erasing, 'params': cx.params, 'macs': cx.macs,
                 'accuracy': None}
        if train:
            done = os.path.join(cfg.train.output, 'results.json')
            if os.path.exists(done) and not overwrite:
                print(f'[ablation] {row.label}: finished earlier, reading {done}')
                with open(done, encoding='utf-8') as f:
                    res = json.load(f)
            else:
                print(f'[ablation] {row.label}: training {row.model} in {cfg.train.output}')
                last = os.path.join(cfg.train.output, 'last.pt')
                res = run(cfg, resume='auto' if os.path.exists(last) and not overwrite else None,
                          overwrite=overwrite)
            entry['accuracy'] = res['final']['accuracy']
            entry['mean_class_recall'] = res['final']['mean_class_recall']
            entry['recall'] = res['final']['recall']
            split_text = res['dataset']['split_text']
        results[row.key] = entry
    results_meta = {'dataset': base.data.format, 'path': base.data.path, 'split': split_text,
                    'epochs': base.train.epochs, 'trained': train}
    return {'meta': results_meta, 'rows': results}


def write_report(base: Config, output: str, report: dict) -> str:
    meta = report['meta']
    lines = [f"# Table 5 ablation on {meta['dataset']}", '']
    if meta['trained']:
        lines.append(f"Data: `{meta['path']}`, split: {meta['split']}, {meta['epochs']} epochs, "
                     'accuracy of the final model on the test split.')
    else:
        lines.append('Complexity only (--no-train): no accuracy measured.')
    lines += ['', table(base, report['rows']), '',
              'Paper accuracies are quoted only where the issue gives them (WRN and Light-NTWRN rows); '
              'the paper used random 70/30 splits. MACs count Conv2d + Linear multiply-accumulates; '
              'FLOPs = 2 x MACs.', '']
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, 'ablation.md')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    with open(os.path.join(output, 'ablation.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='fer-ablation', description=__doc__.split('\n\n')[0])
    p.add_argument('--config', required=True, help='YAML config shared by every row')
    p.add_argument('--output', required=True, help='folder for the rows and ablation.md')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value for every row (repeatable)')
    p.add_argument('--rows', default=','.join(r.key for r in ROWS),
                   help=f"comma-separated subset of {', '.join(r.key for r in ROWS)}")
    p.add_argument('--no-train', action='store_true', help='only count params and FLOPs')
    p.add_argument('--overwrite', action='store_true', help='retrain rows that already finished')
    args = p.parse_args(argv)
    by_key = {r.key: r for r in ROWS}
    wanted = [k.strip() for k in args.rows.split(',') if k.strip()]
    unknown = [k for k in wanted if k not in by_key]
    if unknown or not wanted:
        print(f'fer-ablation: error: --rows {args.rows!r}: unknown {unknown}; choose from {list(by_key)}',
              file=sys.stderr)
        return 2
    info = None
    try:
        base = load_config(args.config, args.overrides)
        if not args.no_train:
            info = distributed.setup(base.train.device)  # one process group for every row
        report = run_ablation(base, args.output, [by_key[k] for k in wanted], not args.no_train,
                              args.overwrite)
        if info is None or info.is_main:
            path = write_report(base, args.output, report)
            print(table(base, report['rows']))
            print(f'[ablation] written: {path}')
    except (ValueError, FileNotFoundError, DatasetError, FloatingPointError) as exc:
        print(f'fer-ablation: error: {exc}', file=sys.stderr)
        return 2
    finally:
        if info is not None:
            distributed.cleanup(info)
    return 0


if __name__ == '__main__':
    sys.exit(main())
