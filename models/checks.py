"""Rules for plain config values: each turns a value into why it is wrong, or None.

Pure Python: the config schema (sweeps/config/schema.py) and the registry's per-model and
per-source rules (models/registry.py) are both written with these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # a value -> why it is wrong, or None


def integer(low: int, optional: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            return f"a whole number >= {low}" + (" (or null)" if optional else "")
        return None
    return check


def number(low: float = -math.inf, high: float = math.inf, low_open: bool = False,
           high_open: bool = False, optional: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
        if ok:
            return None
        return (f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                .replace("-inf", "-∞").replace("inf", "∞") + (" (or null)" if optional else ""))
    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def one_of(*choices: Any) -> Check:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


PROBABILITY = number(0.0, 1.0, high_open=True)
