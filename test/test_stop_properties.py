"""Property-based tests (Hypothesis) of the STOP contract's invariants, on the ROS-free parts that decide it:

- command time never decreases, whatever the order of frames, clock ticks, stalls and forced HOLDs;
- a latched STOP is released only after release_s during which faces were in view and none gave STOP
  evidence (the rule of docs/commands.md, restated here from the probabilities);
- a face whose STOP expression is above its threshold on every frame in which it is detected, at any
  detection pattern of rate >= 50 % whose gaps stay within coast_s and any frame rate, gets STOP at the
  stated bound: the first frame at or after max(first detection + confirm_s, the min_hits-th detection).
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import TRACKED, Detection, FaceResult
from fer_ros.hri.command_config import STOP, load_command_config
from fer_ros.hri.commands import TIME_EPS, CommandMapper
from fer_ros.hri.decisions import Decisions
from fer_ros.hri.stamps import StampPolicy
from fer_ros.perception.smoothing import SmoothingConfig
from fer_ros.perception.tracking import FaceTracker, TrackerConfig

CONFIG = load_command_config(None)
K = len(EXPRESSIONS)
SCARED, ANGRY = EXPRESSIONS.index('scared'), EXPRESSIONS.index('angry')
STOP_RULES = [(EXPRESSIONS.index(r.expression), r) for r in CONFIG.rules.values() if r.command == STOP]
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stop_units(p: np.ndarray, margin: float) -> float:
    """The documented STOP evidence: the STOP expressions' probabilities in units of their thresholds."""
    return sum(float(p[k]) / max(rule.min_confidence - margin, TIME_EPS) for k, rule in STOP_RULES)


def distributions(min_scared: float = 0.0):
    """Probability vectors over EXPRESSIONS, optionally with scared >= min_scared."""
    def build(weights, scared):
        w = np.asarray(weights, np.float64)
        w[SCARED] = 0.0
        rest = (1.0 - scared) * w / w.sum() if w.sum() > 0 else np.full(K, (1.0 - scared) / (K - 1))
        rest[SCARED] = scared
        return rest.astype(np.float32)
    return st.builds(build, st.lists(st.floats(0.01, 1.0), min_size=K, max_size=K),
                     st.floats(min_scared, 1.0) if min_scared else st.floats(0.0, 1.0))


def face(p: np.ndarray, face_id: str = 'f1', tracking: str = TRACKED) -> FaceResult:
    best = int(np.argmax(p))
    return FaceResult(face_id, (0.0, 0.0, 50.0, 50.0), EXPRESSIONS[best], float(p[best]), p, p, 0.0, 0.0, 0.9,
                      tracking)


@PROFILE
@given(st.lists(st.tuples(st.sampled_from(['frame', 'tick', 'hold', 'stall_frame']),
                          st.floats(0.0, 0.6), distributions()), min_size=1, max_size=80))
def test_command_time_never_decreases(steps):
    """Frames (some finishing after the clock went on: a stall), ticks and forced HOLDs in any order:
    every command handed out carries a stamp no older than the one before."""
    decisions = Decisions(CommandMapper(CONFIG), StampPolicy())
    out: list = []
    arrival, stamp = 100.0, 5000.0
    for kind, dt, p in steps:
        arrival += dt
        stamp += dt
        if kind == 'tick':
            decisions.tick(arrival, out.extend)
        elif kind == 'hold':
            decisions.hold(arrival, final=False, publish=out.extend)
        else:
            verdict = decisions.judge('cam', stamp, arrival)
            if kind == 'stall_frame':            # the clock runs on while this frame is in flight
                for k in range(1, 4):
                    decisions.tick(arrival + k * decisions.stall_s, out.extend)
                arrival += 3 * decisions.stall_s
            if not verdict.skip:
                decisions.frame([face(p)], verdict.command_time, out.extend)
    stamps = [c.stamp for c in out]
    assert stamps == sorted(stamps)


@PROFILE
@given(st.lists(st.tuples(st.booleans(), distributions()), min_size=20, max_size=150),
       st.sampled_from([10.0, 30.0]))
def test_a_latched_stop_is_released_only_after_release_s_of_calm_faces_in_view(frames, rate):
    mapper = CommandMapper(CONFIG)
    t = 0.0
    for _ in range(int(0.5 * rate)):                       # latch STOP
        mapper.update([face(np.eye(K, dtype=np.float32)[SCARED])], t)
        t += 1 / rate
    assert mapper.current.command == STOP
    release_s = CONFIG.commands[STOP].release_s
    history = []                                           # (stamp, face in view, its STOP units at keep level)
    for in_view, p in frames:
        changes = [c for c in mapper.update([face(p)] if in_view else [], t) if not c.heartbeat]
        history.append((t, in_view, stop_units(p, CONFIG.hysteresis) if in_view else 0.0))
        if changes and mapper.current.command != STOP:
            window = [h for h in history if h[0] >= t - release_s + TIME_EPS]
            assert t - history[0][0] >= release_s - TIME_EPS
            assert all(seen and units < 1.0 for _, seen, units in window), window
            return
        t += 1 / rate


@st.composite
def detection_patterns(draw):
    """(frame rate, detected per frame): the first frame detected, rate >= 50 %, gaps within coast_s."""
    rate = draw(st.sampled_from([5.0, 10.0, 15.0, 30.0, 60.0]))
    coast = TrackerConfig().coast_s
    frames = int(1.5 * rate) + 2
    detected = [True] + draw(st.lists(st.booleans(), min_size=frames - 1, max_size=frames - 1))
    assume(sum(detected) >= 0.5 * len(detected))
    gaps = [len(run) for run in ''.join('x' if d else '.' for d in detected).split('x') if run]
    assume(all((g + 1) / rate <= coast for g in gaps))
    return rate, detected


@PROFILE
@given(detection_patterns(), st.data())
def test_stop_comes_at_the_stated_bound_at_any_detection_rate_of_50_percent(pattern, data):
    rate, detected = pattern
    tracker = FaceTracker(TrackerConfig(), SmoothingConfig(), EXPRESSIONS)
    mapper = CommandMapper(CONFIG)
    scared = CONFIG.rules['scared'].min_confidence
    box = Detection((200.0, 150.0, 120.0, 120.0), 0.9)
    stamps = [10.0 + i / rate for i in range(len(detected))]
    hits = [s for s, d in zip(stamps, detected) if d]
    confirm_s = CONFIG.rules['scared'].confirm_s
    due = max(stamps[0] + confirm_s, hits[TrackerConfig().min_hits - 1]) if len(hits) >= 2 else math.inf
    expected = next((s for s in stamps if s >= due - TIME_EPS), None)
    stop_at = None
    for s, d in zip(stamps, detected):
        p = data.draw(distributions(min_scared=scared)) if d else None
        tracker.update([box] if d else [], p[None, :] if d else np.zeros((0, K), np.float32), s)
        if any(c.command == STOP for c in mapper.update(tracker.command_faces(), s)) and stop_at is None:
            stop_at = s
    assert stop_at == expected, (stop_at, expected, detected)
