"""Labelled text examples as they come out of a source, before tensorisation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    tokens: list[str]
    label: int


@dataclass
class TextSplits:
    """Train and dev examples of one data set; the test split is not here by design."""

    train: list[Example]
    dev: list[Example]
    label_names: tuple[str, ...]
