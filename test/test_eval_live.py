"""fer-eval-bag --mode live against the real fer_node in another process: the node sees the bag's
frames in time and publishes the same expressions as the offline evaluation of the same frames.

The live evaluation runs as its own process (it is an rclpy node); this test only starts it and
compares its outputs with an offline run.
"""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fer_ros.evaluation.bag_io import BagReader
from fer_ros.evaluation.report import FILES
from fer_ros.tools import eval_bag, make_bag

from ros_harness import requires_ros

pytestmark = [pytest.mark.ros, pytest.mark.slow, requires_ros]

REPO = Path(__file__).resolve().parents[1]


def _faces(path: Path) -> list[tuple[int, str, str]]:
    return [(int(r['frame']), r['face_id'], r['expression']) for r in csv.DictReader(open(path)) if r['expression']]


def test_live_matches_offline(tmp_path):
    # Raw 320x240 images at 4 Hz, in lockstep: each frame only after the node answered the previous one,
    # so nothing is dropped (the node keeps only the newest frame) however slow or loaded this machine is.
    bag = tmp_path / 'bag'
    frames = ((f, None) for f, _ in make_bag.sample_sequence((320, 240)))
    make_bag.write_bag(frames, bag, storage='sqlite3', fmt='raw', rate=make_bag.SAMPLE_RATE_HZ,
                       start_ns=make_bag.SAMPLE_START_NS, progress=False)
    labels = tmp_path / 'labels.csv'
    labels.write_text(make_bag.sample_labels_csv())
    common = [str(bag), '--topic', make_bag.DEFAULT_TOPIC, '--labels', str(labels), '--backend', 'cpu',
              '--no-progress']

    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(120, 200)))   # no cross-talk with parallel runs
    live_out = tmp_path / 'live'
    proc = subprocess.run([sys.executable, '-m', 'fer_ros.tools.eval_bag', *common, '--mode', 'live', '--lockstep',
                           '--out', str(live_out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    node_log = (live_out / 'node.log').read_text() if (live_out / 'node.log').exists() else ''
    assert proc.returncode == 0, f'{proc.stdout}\n{proc.stderr}\nnode log:\n{node_log}'

    offline_out = tmp_path / 'offline'
    assert eval_bag.main([*common, '--out', str(offline_out)]) == 0

    live = json.loads((live_out / FILES['json']).read_text())
    n = sum(s.frames for s in make_bag.SAMPLE_SEGMENTS)
    assert live['live']['published'] == n and live['live']['dropped'] == 0, live['live']
    assert live['counts']['no_output'] == 0 and live['latency_ms']['end_to_end']['n'] == n
    assert live['live']['node_exit_status'] == 0
    assert live['live']['node_diagnostics'].get('frames_processed') == str(n)

    live_faces, offline_faces = _faces(live_out / FILES['frames_csv']), _faces(offline_out / FILES['frames_csv'])
    assert len(live_faces) > n // 2           # faces were found at all
    assert live_faces == offline_faces        # same frames, same tracks, same expressions
    offline = json.loads((offline_out / FILES['json']).read_text())
    assert live['confusion'] == offline['confusion']

    # The recorded node-output bag holds every answer and the publish times of the frames.
    with BagReader(live_out / 'node_output') as r:
        assert r.topics['/fer_eval/expressions'].count == n and r.topics['/fer_eval/sent'].count == n
        assert r.topics['/fer_eval/expressions'].msgtype == 'fer_ros/msg/FaceExpressionArray'
    for name in ('latency_histogram', 'stage_latency', 'timeline', 'confusion_matrix'):
        assert (live_out / FILES[name]).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_live_mode_reports_a_node_that_fails_to_start(tmp_path):
    bag = tmp_path / 'bag'
    make_bag.write_bag(((f, None) for f, _ in make_bag.sample_sequence((320, 240))), bag, progress=False)
    out = tmp_path / 'live'
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(120, 200)))
    proc = subprocess.run([sys.executable, '-m', 'fer_ros.tools.eval_bag', str(bag), '--topic', make_bag.DEFAULT_TOPIC,
                           '--mode', 'live', '--param', 'commands_file=/nonexistent/commands.yaml', '--out', str(out),
                           '--no-progress', '--startup-timeout', '30'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert 'fer_node exited with status' in proc.stderr and 'commands.yaml' in proc.stderr
