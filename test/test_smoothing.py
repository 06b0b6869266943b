"""Temporal smoothing in seconds (one-frame flicker suppressed, real changes come through, the same timing
at any frame rate) and valence/arousal."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fer_ros.core.labels import CIRCUMPLEX, EXPRESSIONS
from fer_ros.perception.smoothing import (
    EmaSmoother,
    NoSmoother,
    SmoothingConfig,
    WindowSmoother,
    circumplex_matrix,
    circumplex_point,
    make_smoother,
)

K = len(EXPRESSIONS)


def valence_arousal(p, labels):
    """The tracker's computation for one probability vector in ``labels`` order."""
    return circumplex_point(p, circumplex_matrix(labels))


def probs(expression: str, confidence: float = 0.8) -> np.ndarray:
    p = np.full(K, (1 - confidence) / (K - 1), dtype=np.float32)
    p[EXPRESSIONS.index(expression)] = confidence
    return p


def winners(config: SmoothingConfig, sequence: list[str], confidence: float = 0.8, rate: float = 30.0) -> list[str]:
    smoother = make_smoother(config, K)
    smoothed = [smoother.update(probs(e, confidence), i / rate) for i, e in enumerate(sequence)]
    return [EXPRESSIONS[int(np.argmax(p))] for p in smoothed]


@pytest.mark.parametrize('kwargs,match', [
    ({'method': 'median'}, r'SmoothingConfig\.method'),
    ({'tau_s': 0.0}, r'SmoothingConfig\.tau_s'),
    ({'tau_s': 11.0}, r'SmoothingConfig\.tau_s'),
    ({'window_s': 0}, r'SmoothingConfig\.window_s'),
    ({'window_s': -1.0}, r'SmoothingConfig\.window_s'),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SmoothingConfig(**kwargs)


def test_factory_builds_the_configured_smoother():
    assert isinstance(make_smoother(SmoothingConfig(), K), EmaSmoother)
    assert isinstance(make_smoother(SmoothingConfig(method='window'), K), WindowSmoother)
    assert isinstance(make_smoother(SmoothingConfig(method='none'), K), NoSmoother)


@pytest.mark.parametrize('config', [SmoothingConfig(method='ema'), SmoothingConfig(method='window')])
@pytest.mark.parametrize('rate', [30.0, 60.0])
def test_one_frame_flicker_does_not_change_the_expression(config, rate):
    # (at 10 Hz one frame lasts 0.1 s: as long as 3 frames at 30 Hz, which is a change, not a flicker)
    sequence = ['happy'] * 10 + ['scared'] + ['happy'] * 10
    assert set(winners(config, sequence, 0.9, rate)) == {'happy'}


@pytest.mark.parametrize('config,rate,frames_to_flip', [
    (SmoothingConfig(method='ema'), 30.0, 3),       # alpha 0.28 per 1/30 s: happy 0.44 > scared 0.41, then 0.32 < 0.53
    (SmoothingConfig(method='ema'), 10.0, 1),       # alpha 0.63 per 0.1 s: the same time constant in fewer frames
    (SmoothingConfig(method='window'), 30.0, 3),    # 3 of the 6 frames of the last 0.2 s (a tie: scared is first)
    (SmoothingConfig(method='window'), 10.0, 1),    # 1 of the 2 frames of the last 0.2 s
    (SmoothingConfig(method='none'), 30.0, 1),
])
def test_a_sustained_change_comes_through_after_about_the_same_time(config, rate, frames_to_flip):
    out = winners(config, ['happy'] * 10 + ['scared'] * 10, rate=rate)
    assert out[:10] == ['happy'] * 10
    assert out[10:].index('scared') + 1 == frames_to_flip
    assert out[-1] == 'scared'


def test_ema_weight_is_one_minus_exp_dt_over_tau():
    smoother = EmaSmoother(K, 0.1)
    assert smoother.weight(0.1) == pytest.approx(1 - math.exp(-1))
    assert smoother.weight(0.0) == 0.0 and smoother.weight(-0.5) == 0.0       # no time passed: no weight
    # one frame 0.2 s later weighs what two frames 0.1 s apart weigh together
    a, b = probs('happy', 1.0), probs('sad', 1.0)
    one, two = EmaSmoother(K, 0.1), EmaSmoother(K, 0.1)
    one.update(a, 0.0)
    two.update(a, 0.0)
    two.update(b, 0.1)
    np.testing.assert_allclose(one.update(b, 0.2), two.update(b, 0.2), atol=1e-6)


def test_no_smoothing_follows_every_frame():
    sequence = ['happy', 'scared', 'happy', 'sad']
    assert winners(SmoothingConfig(method='none'), sequence) == sequence


def test_output_is_a_float32_distribution_and_input_is_checked():
    """(Finiteness is checked once per frame by the tracker, before any state changes: test_tracking.)"""
    smoother = EmaSmoother(K, 0.1)
    rng = np.random.default_rng(0)
    for i in range(50):
        raw = rng.dirichlet(np.ones(K)).astype(np.float32) * 0.999      # rows a little off 1
        out = smoother.update(raw, i / 30)
        assert out.dtype == np.float32 and out.shape == (K,)
        assert out.sum() == pytest.approx(1.0, abs=1e-6) and np.all(out >= 0)
    with pytest.raises(ValueError, match='expected 7 probabilities'):
        smoother.update(np.ones(5) / 5, 2.0)


def test_window_mean():
    smoother = WindowSmoother(K, 0.1)
    a, b = probs('happy', 1.0), probs('sad', 1.0)
    for t, p in ((0.0, a), (0.04, a), (0.08, a), (0.12, b)):
        out = smoother.update(p, t)
    np.testing.assert_allclose(out, (2 * a + b) / 3, atol=1e-6)      # the `a` of t=0 left the 0.1 s window


# --- valence / arousal ---------------------------------------------------------------------------

def test_pure_expressions_sit_on_their_circumplex_points():
    for name in EXPRESSIONS:
        assert valence_arousal(probs(name, 1.0), EXPRESSIONS) == pytest.approx(CIRCUMPLEX[name], abs=1e-6)
    # the paper's scenario: a scared face is unpleasant and activated, a happy one pleasant
    v, a = valence_arousal(probs('scared', 1.0), EXPRESSIONS)
    assert v < 0 < a
    assert valence_arousal(probs('happy', 1.0), EXPRESSIONS)[0] > 0


def test_mixture_is_the_weighted_mean_and_label_order_does_not_matter():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(K))
    expected = p @ circumplex_matrix(EXPRESSIONS).astype(np.float64)
    assert valence_arousal(p, EXPRESSIONS) == pytest.approx(tuple(expected), abs=1e-6)
    order = rng.permutation(K)
    assert valence_arousal(p[order], tuple(EXPRESSIONS[i] for i in order)) == pytest.approx(tuple(expected), abs=1e-6)
    for _ in range(100):
        v, a = valence_arousal(rng.dirichlet(np.ones(K) * 0.3), EXPRESSIONS)
        assert -1 <= v <= 1 and -1 <= a <= 1
    assert valence_arousal(np.zeros(K), EXPRESSIONS) == (0.0, 0.0)


def test_valence_arousal_rejects_bad_input():
    with pytest.raises(ValueError, match='no circumplex coordinates'):
        valence_arousal(np.ones(2) / 2, ('happy', 'contempt'))
    with pytest.raises(ValueError, match='3 probabilities for 7 labels'):
        valence_arousal(np.ones(3) / 3, EXPRESSIONS)
