"""Stanford Sentiment Treebank (Socher et al. 2013) from its PTB-tree files.

`fine`: five classes on every sentence (8,544 / 1,101 train / dev).
`binary`: neutral dropped, {0, 1} -> negative, {3, 4} -> positive (6,920 / 872).
With `phrases=True` training uses every labelled node of the training trees, as
Iyyer et al. (2015) do; dev is always whole sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

from models.data.lockbox import unlock
from models.data.splits import Example, TextSplits
from models.errors import DataError
from models.registry import DataSource, register_data

FINE_LABELS = ("very negative", "negative", "neutral", "positive", "very positive")
BINARY_LABELS = ("negative", "positive")
_BINARY = {0: 0, 1: 0, 3: 1, 4: 1}
_TREE_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def parse_tree(line: str) -> list[tuple[int, list[str]]]:
    """Every node of one PTB tree as (label, words under it), in post-order (root last)."""
    toks = _TREE_TOKEN.findall(line)
    stack: list[tuple[int, list[str]]] = []
    nodes: list[tuple[int, list[str]]] = []
    i = 0
    try:
        while i < len(toks):
            tok = toks[i]
            if tok == "(":
                stack.append((int(toks[i + 1]), []))
                i += 2
                continue
            if tok == ")":
                label, words = stack.pop()
                nodes.append((label, words))
                if stack:
                    stack[-1][1].extend(words)
            else:
                stack[-1][1].append(tok)
            i += 1
    except (IndexError, ValueError) as e:
        raise DataError(f"not a labelled PTB tree: {line[:60]!r}") from e
    if stack or not nodes:
        raise DataError(f"unbalanced PTB tree: {line[:60]!r}")
    return nodes


def read_trees(path: Path) -> list[list[tuple[int, list[str]]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line}); the "
                        "Stanford PTB-tree files are UTF-8: fetch them again or re-save this file as UTF-8."
                        ) from e
    return [parse_tree(line) for line in text.splitlines() if line.strip()]


def _examples(trees, binary: bool, phrases: bool) -> list[Example]:
    out = []
    for nodes in trees:
        for label, words in (nodes if phrases else nodes[-1:]):
            if binary:
                if label not in _BINARY:
                    continue
                label = _BINARY[label]
            out.append(Example(words, label))
    return out


def sst_folder(root: str | Path | None) -> Path:
    """The folder holding train.txt and dev.txt, or a DataError saying how to get it."""
    hint = ("get the Stanford Sentiment Treebank in PTB-tree format (trainDevTestTrees_PTB.zip "
            "from the Stanford NLP sentiment page) and point data.root=<folder> at the folder "
            "holding train.txt, dev.txt and test.txt")
    if root is None or str(root) == "":
        raise DataError(f"SST needs its files and data.root is not set: {hint}.")
    folder = Path(root).expanduser()
    missing = [n for n in ("train.txt", "dev.txt") if not (folder / n).is_file()]
    if missing:
        raise DataError(f"SST files {', '.join(missing)} not found in {folder}: {hint}.")
    return folder


def load_sst_test(root: str | Path | None, binary: bool) -> list[Example]:
    """Test sentences of SST; only the final evaluation may call this."""
    unlock("sst2" if binary else "sst", log=False)
    folder = sst_folder(root)
    if not (folder / "test.txt").is_file():
        raise DataError(f"SST test file test.txt not found in {folder}.")
    return _examples(read_trees(folder / "test.txt"), binary, phrases=False)


def load_sst(root: str | Path | None, binary: bool, phrases: bool) -> TextSplits:
    """Train (sentences or phrases) and dev (sentences) of SST fine or binary."""
    folder = sst_folder(root)
    return TextSplits(
        train=_examples(read_trees(folder / "train.txt"), binary, phrases),
        dev=_examples(read_trees(folder / "dev.txt"), binary, phrases=False),
        label_names=BINARY_LABELS if binary else FINE_LABELS,
    )


for _binary in (False, True):
    register_data(DataSource(
        name="sst2" if _binary else "sst", kind="classification",
        doc="Stanford Sentiment Treebank, " + ("binary" if _binary else "five classes") + ", your copy",
        load=lambda data, cache, b=_binary: load_sst(data.get("root"), binary=b,
                                                      phrases=bool(data.get("phrases", False))),
        test=lambda data, cache, task, b=_binary: load_sst_test(data.get("root"), binary=b),
    ))
