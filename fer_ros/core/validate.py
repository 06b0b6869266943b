"""One range check for every config dataclass (detector, tracker, smoothing, commands)."""
from __future__ import annotations

import math
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
