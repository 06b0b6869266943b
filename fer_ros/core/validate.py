"""One range check for every config dataclass (detector, tracker, smoothing, commands, backends), and the
field metadata (``setting``) that declares each field's choices or range once."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


def range_problem(value: Any, low: float | None = None, high: float | None = None, *,
                  low_open: bool = False, integer: bool = False) -> str | None:
    """What is wrong with ``value`` as a number in [low, high] (``(low, ...`` if ``low_open``), or None.

    bool is never a number here; ``integer`` requires an int. The text reads after a field name,
    e.g. 'must be in 0..1, got 1.5', 'must be > 0, got 0', "must be a number, got '2s'".
    """
    kind = 'an int' if integer else 'a number'
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) \
            or not math.isfinite(value):
        return f'must be {kind}, got {value!r}'
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f'in {"(" if low_open else ""}{low:g}..{high:g}'
        elif low is not None:
            bounds = f'{">" if low_open else ">="} {low:g}'
        else:
            bounds = f'<= {high:g}'
        return f'must be {"an int " if integer else ""}{bounds}, got {value!r}'
    return None


def check_range(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, integer: bool = False) -> None:
    """Raise ValueError('<owner>.<name> must be ...') unless ``value`` passes range_problem."""
    problem = range_problem(value, low, high, low_open=low_open, integer=integer)
    if problem:
        raise ValueError(f'{owner}.{name} {problem}')


# --- choices and ranges declared once, on the config dataclasses' fields ----------------------------

def setting(default: Any, *, choices: tuple = (), low: float | None = None, high: float | None = None,
            low_open: bool = False):
    """A config dataclass field whose allowed values travel with it (``dataclasses.field`` metadata).

    ``check_fields`` validates them in ``__post_init__``; the node's parameter table, the CLIs and the
    generated docs read them with ``field_limits`` instead of repeating them.
    """
    return field(default=default, metadata={'choices': tuple(choices), 'low': low, 'high': high,
                                            'low_open': low_open})


@dataclass(frozen=True)
class Limits:
    """What a ``setting`` field allows: a default, and choices or an inclusive [low, high] range."""

    default: Any
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False          # low itself is excluded


def field_limits(cls: type, name: str) -> Limits:
    """The Limits of field ``name`` of config dataclass ``cls`` (KeyError: no such field)."""
    f = {f.name: f for f in fields(cls)}[name]
    m = f.metadata
    return Limits(f.default, m.get('choices', ()), m.get('low'), m.get('high'), m.get('low_open', False))


def check_fields(config: Any, owner: str = '') -> None:
    """Validate every ``setting`` field of a config dataclass instance.

    Raises:
        ValueError: '<owner>.<field> must be one of (...), got ...' or a range_problem text; ``owner`` is
            the class name unless given (e.g. a section path in a config file, 'optim').
    """
    owner = owner or type(config).__name__
    for f in fields(config):
        if 'choices' not in f.metadata:
            continue
        value, limits = getattr(config, f.name), field_limits(type(config), f.name)
        if limits.choices and value not in limits.choices:
            raise ValueError(f'{owner}.{f.name} must be one of {limits.choices}, got {value!r}')
        if limits.low is not None or limits.high is not None:
            integer = isinstance(limits.default, int) and not isinstance(limits.default, bool)
            check_range(owner, f.name, value, limits.low, limits.high, low_open=limits.low_open, integer=integer)
