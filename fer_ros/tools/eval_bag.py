"""fer-eval-bag: numbers and pictures from a recorded camera bag.

    fer-eval-bag BAG --topic /camera/image_raw [--labels labels.csv | --label happy] [--out DIR]
                 [--mode offline|live] [--model PATH] [--backend auto|onnxruntime|tensorrt|torch]

offline (default): reads the Image / CompressedImage messages of TOPIC straight from the bag and runs the
    perception pipeline in this process, as fast as the machine allows. No ROS needed.
live: starts the real fer_node, publishes the bag's images with their original timing (or ×--speed),
    records what the node publishes (expressions, command, /diagnostics) into DIR/node_output and
    evaluates that; needs ROS (run it through scripts/with_ros.sh). This checks a deployed configuration.

Both modes configure the pipeline from the node's parameter file (default: the packaged config/fer.yaml;
--params-file, --param NAME=VALUE to change it), so they run the same settings.

Writes into DIR: report.json, report.md, frames.csv, confusion_matrix.png and per_class.png (with labels),
latency_histogram.png, stage_latency.png, timeline.png. Exit status: 0 done; 1 done, but the bag was
damaged or frames did not decode (see the warnings); 2 nothing evaluated (bad bag, topic, labels, option).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_ros.core.backend_options import BACKENDS
from fer_ros.evaluation.bag_io import BagReader
from fer_ros.evaluation.bag_types import BagError
from fer_ros.evaluation.ground_truth import LabelError, Labels
from fer_ros.evaluation.offline import EvalError, default_params_file, node_parameters, parse_overrides, run_offline
from fer_ros.evaluation.report import RunInfo, write_report

# --------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fer-eval-bag', description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bag', help='rosbag2 directory, .db3 / .mcap file, or ROS 1 .bag')
    p.add_argument('--topic', required=True, help='image topic (sensor_msgs/Image or CompressedImage)')
    lab = p.add_mutually_exclusive_group()
    lab.add_argument('--labels', metavar='CSV', help='labels: start_s,end_s,expression[,face_id] rows '
                     '(seconds from the bag start)')
    lab.add_argument('--label', metavar='EXPRESSION', help='one label for the whole bag (e.g. happy)')
    p.add_argument('--out', metavar='DIR', help='output folder (default: eval_<bag name>); files are replaced')
    p.add_argument('--mode', choices=('offline', 'live'), default='offline', help='default offline')
    p.add_argument('--model', metavar='PATH', help='classifier model (default: the default model)')
    p.add_argument('--backend', choices=BACKENDS,
                   help="inference backend (default: the parameter file's, 'auto')")
    p.add_argument('--params-file', metavar='YAML', help='fer_node parameter file (default: packaged config/fer.yaml)')
    p.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                   help='override a fer_node parameter (repeatable), e.g. --param tracker_min_hits=3')
    p.add_argument('--max-frames', type=int, metavar='N', help='evaluate (live: play) only the first N frames')
    p.add_argument('--speed', type=float, default=1.0, help='live: playback speed factor (default 1.0)')
    p.add_argument('--lockstep', action='store_true',
                   help='live: publish each frame only after the node answered the previous one (nothing is '
                        'dropped however slow the machine; the timing is then no longer the recording\'s)')
    p.add_argument('--startup-timeout', type=float, default=60.0, metavar='S',
                   help='live: seconds to wait for the node to come up (default 60)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f'fer-eval-bag: {message}', file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        return _fail(f'--max-frames must be >= 1, got {args.max_frames}')
    if not args.speed > 0:
        return _fail(f'--speed must be > 0, got {args.speed}')
    try:
        labels = (Labels.from_csv(args.labels) if args.labels else
                  Labels.whole_bag(args.label) if args.label else None)
    except LabelError as exc:
        return _fail(str(exc))
    try:
        from fer_ros.util.paths import default_model_path
        params_file = args.params_file or default_params_file()
        overrides = parse_overrides(args.param)
        if args.backend:
            overrides['backend'] = args.backend
        # Resolve the model here so offline and live (another process) certainly use the same file.
        model = args.model or default_model_path()
        if not Path(model).is_file():
            raise EvalError(f'--model {model}: no such file')
        overrides['model_path'] = str(Path(model).resolve())
        values = node_parameters(params_file, overrides)
    except (EvalError, FileNotFoundError) as exc:
        return _fail(str(exc))

    try:
        reader = BagReader(args.bag)
    except BagError as exc:
        return _fail(str(exc))
    with reader:
        try:
            info = reader.require_topic(args.topic)
        except BagError as exc:
            return _fail(str(exc))
        for w in reader.warnings:
            print(f'fer-eval-bag: warning: {w}', file=sys.stderr)
        out = Path(args.out or f'eval_{Path(args.bag).resolve().name}')
        out.mkdir(parents=True, exist_ok=True)
        extra: dict = {}
        try:
            if args.mode == 'offline':
                run = run_offline(reader, args.topic, values, not args.no_progress, args.max_frames)
                records, wall, backend = run.records, run.wall_s, run.backend
            else:
                from fer_ros.evaluation.live import LiveError, LiveOptions, run_live
                options = LiveOptions(params_file=params_file, overrides=overrides, out_dir=out, speed=args.speed,
                                      lockstep=args.lockstep, startup_timeout_s=args.startup_timeout,
                                      max_frames=args.max_frames,
                                      progress=not args.no_progress)
                try:
                    live = run_live(reader, args.topic, options)
                except LiveError as exc:
                    return _fail(str(exc))
                records, wall, backend, extra = live.records, None, live.backend, {'live': live.summary}
        except KeyboardInterrupt:
            return _fail('interrupted', 130)
        if not records:
            return _fail(f'{args.bag}: topic {args.topic} has no messages to evaluate'
                         + (f' ({reader.damage.describe(reader.start_ns)})' if reader.damage else ''))
        damage = reader.damage.describe(reader.start_ns) if reader.damage else None
        run_info = RunInfo(bag=str(args.bag), topic=args.topic, msgtype=info.msgtype, storage=reader.storage,
                           mode=args.mode, model=values['model_path'], backend=backend,
                           labels_source=labels.source if labels else '', frames_in_bag=info.count, wall_s=wall,
                           warnings=list(dict.fromkeys(reader.warnings)), damage=damage, extra=extra)
        report = write_report(out, records, labels, run_info)
    counts = report['counts']
    if damage:
        print(f'fer-eval-bag: warning: {damage}; evaluated the {counts["frames"]} frames before it', file=sys.stderr)
    summary = [f'{counts["frames"]} frames, {counts["frames_with_faces"]} with faces']
    if report['accuracy'] is not None:
        summary.append(f'accuracy {100 * report["accuracy"]:.1f} % over {counts["scored"]} scored faces')
    if report['throughput']:
        summary.append(f'{report["throughput"]["frames_per_s"]:.1f} frames/s')
    if 'end_to_end' in report['latency_ms']:
        summary.append(f'end-to-end latency median {report["latency_ms"]["end_to_end"]["median"]:.1f} ms')
    print(f'{"; ".join(summary)}. Report: {out / "report.md"}')
    if counts['decode_errors']:
        print(f'fer-eval-bag: warning: {counts["decode_errors"]} frame(s) did not decode (see frames.csv)',
              file=sys.stderr)
    return 1 if damage or counts['decode_errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
