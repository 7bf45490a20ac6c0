"""`make final` evaluates a configuration's weights with the vocabulary and labels they were
trained with: a training file edited after the sweep is refused in one sentence (before,
a shape traceback or silently wrong test metrics), and runs written before the record
existed still evaluate, with a note."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sweeps.final import main as final_main
from sweeps.sweep import main as sweep_main
from sweeps.tracking.trained_data import TRAINED_DATA_FILE
from tests.sweeps.test_sweep import overrides


def edit_train_rows(csv: Path, old: str, new: str) -> None:
    """Replace the word `old` by `new` in the train rows only."""
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(line.replace(old, new) if line.rstrip().endswith(",train") else line
                           for line in lines))


@pytest.mark.slow
def test_a_training_file_edited_after_the_sweep_is_refused(tmp_path, polarity_csv, capsys):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    original = polarity_csv.read_text()
    capsys.readouterr()
    for old, new, what in [("great", "great grand", "29 entries then, 30 now"),  # a word more
                           ("great", "grand", "29 entries then, 29 now")]:  # same size, other word
        polarity_csv.write_text(original)
        edit_train_rows(polarity_csv, old, new)
        assert final_main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "changed since it was trained (vocabulary " + what in err, err
        assert "restore the data files as they were, or train again" in err
    polarity_csv.write_text(original)  # as trained: evaluated, and the refusals counted nothing
    assert final_main(args) == 0
    out = capsys.readouterr().out
    assert "test evaluations of dan-csv-grid: 1" in out and "(a repeat)" not in out


@pytest.mark.slow
def test_a_run_from_before_the_record_rebuilds_the_vocabulary_with_a_note(tmp_path, polarity_csv, capsys):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    saved = list((tmp_path / "art").rglob(TRAINED_DATA_FILE))
    assert len(saved) == 1  # one record, on the configuration's run
    shutil.rmtree(saved[0].parent)  # as a run written before the change
    capsys.readouterr()
    assert final_main(args) == 0
    captured = capsys.readouterr()
    assert "was trained before runs kept their vocabulary" in captured.err
    assert "test evaluations of dan-csv-grid: 1" in captured.out
