"""Temporal smoothing (one-frame flicker suppressed, real changes come through) and valence/arousal."""
from __future__ import annotations

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


def winners(config: SmoothingConfig, sequence: list[str], confidence: float = 0.8) -> list[str]:
    smoother = make_smoother(config, K)
    return [EXPRESSIONS[int(np.argmax(smoother.update(probs(e, confidence))))] for e in sequence]


@pytest.mark.parametrize('kwargs,match', [
    ({'method': 'median'}, r'SmoothingConfig\.method'),
    ({'alpha': 0.0}, r'SmoothingConfig\.alpha'),
    ({'alpha': 1.5}, r'SmoothingConfig\.alpha'),
    ({'window': 0}, r'SmoothingConfig\.window'),
    ({'window': 2.5}, r'SmoothingConfig\.window'),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SmoothingConfig(**kwargs)


def test_factory_builds_the_configured_smoother():
    assert isinstance(make_smoother(SmoothingConfig(), K), EmaSmoother)
    assert isinstance(make_smoother(SmoothingConfig(method='window'), K), WindowSmoother)
    assert isinstance(make_smoother(SmoothingConfig(method='none'), K), NoSmoother)


@pytest.mark.parametrize('config', [SmoothingConfig(method='ema', alpha=0.4),
                                    SmoothingConfig(method='window', window=5)])
def test_one_frame_flicker_does_not_change_the_expression(config):
    sequence = ['happy'] * 10 + ['scared'] + ['happy'] * 10
    assert set(winners(config, sequence, 0.9)) == {'happy'}


@pytest.mark.parametrize('config,frames_to_flip', [
    (SmoothingConfig(method='ema', alpha=0.4), 2),      # frame 1: happy 0.49 > scared 0.34; frame 2: 0.31 < 0.52
    (SmoothingConfig(method='window', window=5), 3),    # 3 of the 5 frames
    (SmoothingConfig(method='none'), 1),
])
def test_a_sustained_change_comes_through(config, frames_to_flip):
    out = winners(config, ['happy'] * 10 + ['scared'] * 10)
    assert out[:10] == ['happy'] * 10
    assert out[10:].index('scared') + 1 == frames_to_flip
    assert out[-1] == 'scared'


def test_no_smoothing_follows_every_frame():
    sequence = ['happy', 'scared', 'happy', 'sad']
    assert winners(SmoothingConfig(method='none'), sequence) == sequence


def test_output_is_a_float32_distribution_and_input_is_checked():
    smoother = EmaSmoother(K, 0.4)
    rng = np.random.default_rng(0)
    for _ in range(50):
        raw = rng.dirichlet(np.ones(K)).astype(np.float32) * 0.999      # rows a little off 1
        out = smoother.update(raw)
        assert out.dtype == np.float32 and out.shape == (K,)
        assert out.sum() == pytest.approx(1.0, abs=1e-6) and np.all(out >= 0)
    with pytest.raises(ValueError, match='expected 7 probabilities'):
        smoother.update(np.ones(5) / 5)
    with pytest.raises(ValueError, match='finite'):
        smoother.update(np.full(K, np.nan))


def test_window_mean():
    smoother = WindowSmoother(K, 3)
    a, b = probs('happy', 1.0), probs('sad', 1.0)
    for p in (a, a, a, b):
        out = smoother.update(p)
    np.testing.assert_allclose(out, (2 * a + b) / 3, atol=1e-6)      # the oldest `a` left the window


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
