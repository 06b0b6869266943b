"""The one source of truth for expression labels.

Canonical words are REP-155's (hri_msgs/Expression): neutral, angry, sad, happy, surprised,
disgusted, scared. ``EXPRESSIONS`` is the project's canonical class order, which is FER2013's
index order (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral) written with the
REP-155 words, so FER2013 integer labels index it directly.

A model's own class order travels in its ONNX metadata (``ModelSpec.labels``); never assume it
equals ``EXPRESSIONS``.
"""
from __future__ import annotations

ANGRY = 'angry'
DISGUSTED = 'disgusted'
SCARED = 'scared'
HAPPY = 'happy'
SAD = 'sad'
SURPRISED = 'surprised'
NEUTRAL = 'neutral'

EXPRESSIONS: tuple[str, ...] = (ANGRY, DISGUSTED, SCARED, HAPPY, SAD, SURPRISED, NEUTRAL)

# Dataset / library spellings -> canonical word. Keys are lower-case.
_ALIASES: dict[str, str] = {
    'angry': ANGRY, 'anger': ANGRY, 'an': ANGRY,
    'disgusted': DISGUSTED, 'disgust': DISGUSTED, 'di': DISGUSTED,
    'scared': SCARED, 'fear': SCARED, 'fearful': SCARED, 'afraid': SCARED, 'fe': SCARED,
    'happy': HAPPY, 'happiness': HAPPY, 'joy': HAPPY, 'ha': HAPPY,
    'sad': SAD, 'sadness': SAD, 'sa': SAD,
    'surprised': SURPRISED, 'surprise': SURPRISED, 'su': SURPRISED,
    'neutral': NEUTRAL, 'ne': NEUTRAL,
}

# Circumplex coordinates (valence, arousal) in -1..1 per expression, after Russell's circumplex
# model of affect (Russell 1980) as placed in the AffectNet valence/arousal annotations: the
# expression's valence/arousal is the probability-weighted mean of these points.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    NEUTRAL: (0.0, 0.0),
    HAPPY: (0.8, 0.5),
    SURPRISED: (0.2, 0.8),
    SCARED: (-0.6, 0.7),
    ANGRY: (-0.6, 0.6),
    DISGUSTED: (-0.7, 0.3),
    SAD: (-0.7, -0.4),
}


def canonical(name: str) -> str:
    """Map a dataset or library label spelling to the canonical word.

    Raises:
        ValueError: ``name`` is not a known spelling of one of the seven expressions
            (e.g. CK+'s "contempt", which has no class here).
    """
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f'unknown expression label {name!r}; known: {sorted(set(_ALIASES))}')
    return _ALIASES[key]


def canonical_labels(labels, source: str = 'model') -> tuple[str, ...]:
    """A model's class names as canonical words, in the same order ('fear' -> 'scared', ...).

    Raises:
        ValueError: a name that is no spelling of the seven expressions (e.g. 'contempt'), or two names
            of one expression; the message names ``source`` and every label.
    """
    names = [str(name) for name in labels]
    unknown = [name for name in names if name.strip().lower() not in _ALIASES]
    if unknown:
        raise ValueError(f'{source}: labels {names} contain {unknown}, which are no expression this package '
                         f'knows (known spellings: {sorted(set(_ALIASES))})')
    words = tuple(canonical(name) for name in names)
    if len(set(words)) != len(words):
        raise ValueError(f'{source}: labels {names} name one expression twice ({list(words)} once canonical)')
    return words
