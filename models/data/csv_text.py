"""A user's own labelled text: one CSV with a split column, or one CSV per split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from models.data.lockbox import unlock
from models.data.splits import Example, TextSplits
from models.data.text import tokenize
from models.errors import DataError
from models.registry import DataSource, register_data

DEV_NAMES = ("dev", "valid", "validation")


def _read(path: str | Path) -> pd.DataFrame:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"CSV file {p} not found: set data.path (one file with a split column) "
                        "or data.train and data.dev to existing files.")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError as e:
        raise DataError(f"CSV file {p} is empty: it needs a header row and examples.") from e
    except UnicodeDecodeError as e:
        raise DataError(f"CSV file {p} is not UTF-8 text (byte {e.start}): save it as UTF-8.") from e
    except pd.errors.ParserError as e:
        raise DataError(f"CSV file {p} cannot be parsed: {str(e).splitlines()[0]}.") from e


def _columns(df: pd.DataFrame, where: str, *names: str) -> None:
    for n in names:
        if n not in df.columns:
            raise DataError(f"column {n!r} not in {where} (columns: {', '.join(df.columns)}); "
                            "set data.text_column / data.label_column / data.split_column.")


def load_csv(
    path: str | None = None,
    train: str | None = None,
    dev: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str = "split",
) -> TextSplits:
    """Train and dev from the user's CSV files; label names are the sorted train labels."""
    if path:
        df = _read(path)
        _columns(df, path, text_column, label_column, split_column)
        split = df[split_column].str.lower()
        train_df, dev_df = df[split == "train"], df[split.isin(DEV_NAMES)]
        if train_df.empty or dev_df.empty:
            raise DataError(f"{path} needs rows whose {split_column!r} is 'train' and rows whose "
                            f"{split_column!r} is one of {', '.join(DEV_NAMES)}.")
    elif train and dev:
        train_df, dev_df = _read(train), _read(dev)
        _columns(train_df, train, text_column, label_column)
        _columns(dev_df, dev, text_column, label_column)
    else:
        raise DataError("the csv data set needs data.path=<file with a split column>, "
                        "or data.train=<file> and data.dev=<file>.")
    labels = tuple(sorted(set(train_df[label_column])))
    index = {name: i for i, name in enumerate(labels)}
    unseen = sorted(set(dev_df[label_column]) - set(labels))
    if unseen:
        raise DataError(f"dev labels {unseen} never occur in train; fix the label column.")

    def examples(df: pd.DataFrame) -> list[Example]:
        return [Example(tokenize(t), index[y]) for t, y in zip(df[text_column], df[label_column])]

    return TextSplits(train=examples(train_df), dev=examples(dev_df), label_names=labels)


def load_csv_test(
    label_names: tuple[str, ...],
    path: str | None = None,
    test: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str = "split",
) -> list[Example]:
    """The user's test rows (split 'test' in `path`, or the file `test`); only the final
    evaluation may call this. Labels map as in training (`label_names`)."""
    unlock("csv", log=False)
    if path:
        df = _read(path)
        _columns(df, path, text_column, label_column, split_column)
        df = df[df[split_column].str.lower() == "test"]
    elif test:
        df = _read(test)
        _columns(df, test, text_column, label_column)
    else:
        raise DataError("no test data: set data.path (with rows whose split is 'test') or data.test.")
    if df.empty:
        raise DataError(f"no test rows in {path}: mark them with {split_column}=test.")
    index = {name: i for i, name in enumerate(label_names)}
    unseen = sorted(set(df[label_column]) - set(label_names))
    if unseen:
        raise DataError(f"test labels {unseen} never occur in train; fix the label column.")
    return [Example(tokenize(t), index[y]) for t, y in zip(df[text_column], df[label_column])]


def _columns_of(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: data.get(k, d) for k, d in (("text_column", "text"), ("label_column", "label"),
                                           ("split_column", "split"))}


register_data(DataSource(
    name="csv", kind="classification", doc="your own labelled text, one CSV or one per split",
    load=lambda data, cache: load_csv(data.get("path"), data.get("train"), data.get("dev"),
                                      **_columns_of(data)),
    test=lambda data, cache, task: load_csv_test(task.label_names, data.get("path"), data.get("test"),
                                                 **_columns_of(data)),
))
