"""Bad input on the user's path (`make train`, `make sweep`): one sentence on stderr, exit 2,
nothing created or changed; and the notes a command prints before it trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.sweep import main as sweep_main
from sweeps.train import main as train_main
from tests.sweeps.test_sweep import overrides as sweep_overrides

TINY_SWEEP = ("sweep.trials=1", "seeds=1", "train.max_epochs=1")


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_sentence(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_an_sst_file_that_is_not_utf8_is_one_sentence(tmp_path, capsys):
    sst = tmp_path / "sst"
    sst.mkdir()
    (sst / "train.txt").write_bytes(b"(3 (2 good) (3 film))\n(1 (1 caf\xe9) (2 bad))\n")
    (sst / "dev.txt").write_bytes(b"(3 (2 a) (3 b))\n")
    before = tree(tmp_path)
    args = ["data=sst2", f"data.root={sst}", "seeds=1", "train.max_epochs=1", "threads=1",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    assert train_main(args) == 2
    one_sentence(capsys, "train.txt is not UTF-8", "line 2")
    assert tree(tmp_path) == before


def test_unwritable_places_are_refused_after_an_earlier_run(tmp_path, polarity_csv, capsys):
    """After a sweep made its journal and store, a store or storage that cannot be made is one
    sentence and leaves every file as it was (no study, no experiment)."""
    base = sweep_overrides(tmp_path, polarity_csv, *TINY_SWEEP)
    base = [o for o in base if not o.startswith("storage.url=")]  # the journal, in storage.dir
    assert sweep_main(base) == 0
    assert (tmp_path / "locks" / "studies.journal").is_file()
    capsys.readouterr()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    before = tree(tmp_path)
    bad = {"tracking.uri=sqlite:///": "names no database file",
           f"tracking.uri=sqlite:///{a_file}/mlflow.db": "is a file, not a folder",
           f"storage.dir={a_file}/optuna": "is a file, not a folder",
           f"storage.url=sqlite:///{a_file}/optuna.db": "is a file, not a folder",
           f"tracking.artifacts={a_file}/art": "is a file, not a folder"}
    for override, says in bad.items():
        assert sweep_main([*base, override, "sweep.study_name=other"]) == 2, override
        one_sentence(capsys, override.split("=", 1)[0], says)
        assert tree(tmp_path) == before, override


@pytest.mark.parametrize("typo, meant", [("train.lrr=0.1", "train.lr"), ("+train.lrr=0.1", "train.lr"),
                                         ("+model.embed_dimm=8", "model.embed_dim")])
def test_a_mistyped_key_added_or_not_is_refused_with_a_suggestion(tmp_path, polarity_csv, capsys,
                                                                  typo, meant):
    assert sweep_main([*sweep_overrides(tmp_path, polarity_csv, *TINY_SWEEP), typo]) == 2
    one_sentence(capsys, f"did you mean {meant!r}?", typo.split("=")[0].lstrip("+"))
    assert tree(tmp_path) == {"polarity.csv": tree(tmp_path)["polarity.csv"]}


def tiny_corpus(folder: Path) -> list[str]:
    folder.mkdir()
    words = "the cat sat on a mat and the dog ran to the cat".split()
    lines = "\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words)))
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text(lines + "\n")
    return ["data=text", *(f"data.{s}={folder / s}.txt" for s in ("train", "valid", "test"))]


NOTE = "experiment=bengio_ptb is the recipe that reproduces Bengio et al."


def test_the_nplm_default_says_what_it_is_for_and_which_recipe_reproduces_the_paper(tmp_path, capsys):
    data = tiny_corpus(tmp_path / "corpus")
    where = [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"storage.dir={tmp_path / 'optuna'}",
             "threads=1", "seeds=1", "model.embed_dim=4", "model.hidden_dim=4", "model.n=3"]
    assert train_main(["model=nplm", *data, *where]) == 0
    out = capsys.readouterr().out
    assert NOTE in out and "quick CPU search" in out
    assert out.index(NOTE) < out.index("epoch   1")  # said before training starts
    assert sweep_main(["--create-only", "model=nplm", *data, *where]) == 0
    assert NOTE in capsys.readouterr().out
    # the paper's recipe, or training settings of the user's own: no note
    assert train_main(["model=nplm", *data, *where, "train.max_epochs=1"]) == 0
    assert NOTE not in capsys.readouterr().out
