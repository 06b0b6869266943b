"""Where a frame's time goes: cProfile of the per-frame (ROI) path and of the whole-frame scan, 1 and 5 faces.

    python -m benchmarks.profile_frame [--frames 300] [--top 15] [--faces 1 5]

A development script (run from the checkout). The Pipeline (default model, ONNX Runtime, yunet) runs the
panning 640x480 clip of `make bench` with the whole-frame scan moved out of the way (full_scan_s 60: after
the first frame every frame is an ROI frame, as in the node, whose scan runs on another thread); then the
scan alone (``FaceDetector.detect`` on the whole frame with the scan thread's one-thread session). Prints
CPU ms per call and the functions with the most own time. This is what docs/performance.md's trimming
was chosen from.
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import time

from benchmarks.perception import scenario_clip
from fer_ros.backends import create_face_detector, create_pipeline
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.pipeline import PipelineConfig

WARMUP = 30


def profiled(label: str, step, count: int, top: int) -> None:
    for i in range(WARMUP):
        step(i)
    profile = cProfile.Profile()
    cpu = time.process_time()
    profile.enable()
    for i in range(WARMUP, WARMUP + count):
        step(i)
    profile.disable()
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats('tottime').print_stats(top)
    table = out.getvalue()
    print(f'=== {label}: {cpu_ms:.2f} ms CPU per call (under cProfile)')
    print(table[table.index('   ncalls'):].rstrip() + '\n')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--frames', type=int, default=300)
    ap.add_argument('--top', type=int, default=15)
    ap.add_argument('--faces', type=int, nargs='*', default=[1, 5])
    args = ap.parse_args(argv)
    for faces in args.faces:
        clip = scenario_clip(faces)
        pipeline = create_pipeline(PipelineConfig(backend='cpu', detector=DetectorConfig(full_scan_s=60.0)))
        profiled(f'ROI frame, {faces} face(s) (Pipeline.process)',
                 lambda i: pipeline.process(clip[i % len(clip)], i / 30), args.frames, args.top)
        scan_config = dataclasses.replace(DetectorConfig(), num_threads=1)     # the scan thread's session
        detector = create_face_detector(scan_config)
        profiled(f'whole-frame scan, {faces} face(s) (one thread)',
                 lambda i: detector.detect(clip[i % len(clip)]), args.frames // 3, args.top)
        pipeline.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
