"""The journal survives a torn last record (a kill or a full disk mid-write): every study
stays loadable, the torn bytes are kept in a backup, and later writes land cleanly."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from models.errors import UserError
from sweeps.store import open_storage

STUDIES = ["alpha", "beta", "gamma"]


def make_journal(folder: Path) -> Path:
    store = open_storage(None, folder)
    for name in STUDIES:
        study = optuna.create_study(study_name=name, storage=store)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return folder / "studies.journal"


def studies(folder: Path) -> dict[str, int]:
    store = open_storage(None, folder)
    return {s.study_name: len(optuna.load_study(study_name=s.study_name, storage=store).trials)
            for s in optuna.get_all_study_summaries(store)}


@pytest.mark.parametrize("cut", ["1 byte", "2 bytes", "40 bytes", "half the record", "all but 1 byte"])
def test_a_torn_last_record_loses_no_study(tmp_path, capsys, cut):
    folder = tmp_path / "optuna"
    path = make_journal(folder)
    data = path.read_bytes()
    last = len(data.splitlines(keepends=True)[-1])
    drop = {"1 byte": 1, "2 bytes": 2, "40 bytes": 40, "half the record": last // 2,
            "all but 1 byte": last - 1}[cut]
    path.write_bytes(data[:-drop])

    assert set(studies(folder)) == set(STUDIES)
    err = capsys.readouterr().err
    assert "torn record" in err and err.count("\n") == 1
    (backup,) = folder.glob("studies.journal.torn-*")
    assert backup.read_bytes() == data[:-drop]  # the file as it was, kept
    assert path.read_bytes() == data[:len(data) - last]  # cut at the last whole record

    # the next record lands on a line of its own; everything reloads
    study = optuna.load_study(study_name="gamma", storage=open_storage(None, folder))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    counts = studies(folder)
    assert set(counts) == set(STUDIES) and counts["alpha"] == counts["beta"] == 2
    assert "torn record" not in capsys.readouterr().err  # repaired once


def test_a_record_torn_by_another_process_is_cut_before_the_next_append(tmp_path, capsys):
    folder = tmp_path / "optuna"
    path = make_journal(folder)
    study = optuna.load_study(study_name="alpha", storage=open_storage(None, folder))
    with open(path, "ab") as f:  # another worker died (or ran out of disk) mid-record
        f.write(b'{"op_code":5,"worker_id":"x","trial_id":1,"param_na')
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert "torn record" in capsys.readouterr().err
    assert studies(folder)["alpha"] == 3


def test_a_garbled_record_elsewhere_is_one_sentence_naming_the_line(tmp_path):
    folder = tmp_path / "optuna"
    path = make_journal(folder)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(3, b"this is not json\n")
    path.write_bytes(b"".join(lines))
    with pytest.raises(UserError) as err:
        open_storage(None, folder)
    assert f"{path} has a garbled record on line 4" in str(err.value)
    assert "\n" not in str(err.value)


# --- concurrent first use --------------------------------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from mlflow.tracking import MlflowClient  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from tests.conftest import REPO, write_polarity_csv  # noqa: E402

ROUNDS = int(os.environ.get("SEEDSWEEP_CONCURRENT_ROUNDS", "2"))  # 10 for the soak run


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_started_together_on_a_fresh_store_all_succeed(tmp_path, round_):
    """Two sweeps of one study and a train run, started at once on a fresh store (a new
    MLflow SQLite file and a new Optuna SQLite file): no crash, no corrupt store, each grid
    point once, and MLflow agrees with Optuna."""
    csv = write_polarity_csv(tmp_path / "p.csv", n=300)
    common = ["data=csv", f"data.path={csv}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
              f"tracking.artifacts={tmp_path / 'art'}", "model.embed_dim=8", "model.num_layers=1",
              "model.hidden_dim=8", "seeds=1", "train.max_epochs=2", "threads=1"]
    sweep = [*common, "search_space=dan_tiny", "sampler=grid", f"storage.url=sqlite:///{tmp_path / 'o.db'}",
             f"storage.dir={tmp_path / 'locks'}"]
    commands = [["sweeps.sweep", *sweep], ["sweeps.sweep", *sweep], ["sweeps.train", *common]]
    procs = [subprocess.Popen([sys.executable, "-m", *c], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for c in commands]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n\n".join(o[-2000:] for o in outs)

    study = optuna.load_study(study_name="dan-csv-grid", storage=f"sqlite:///{tmp_path / 'o.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    points = {(t.params["model.word_dropout"], t.params["train.lr"]) for t in study.trials}
    assert len(points) == 4
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    names = {e.name for e in client.search_experiments()}
    assert {"dan-csv-grid", "dan-csv"} <= names
    runs = client.search_runs([client.get_experiment_by_name("dan-csv-grid").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 4 and all(r.info.status == "FINISHED" for r in runs)


# --- secrets ---------------------------------------------------------------------------

from sweeps.core.redact import redact  # noqa: E402


@pytest.mark.parametrize("text, expected", [
    ("postgresql+psycopg2://ann:s3cr%40t@db:5432/optuna", "postgresql+psycopg2://ann:***@db:5432/optuna"),
    ("tracking.uri=https://u:tok@mlflow.example/ x", "tracking.uri=https://u:***@mlflow.example/ x"),
    ("s3://:key@bucket/a", "s3://:***@bucket/a"),
    ("sqlite:////tmp/a.db and ann@example.org", "sqlite:////tmp/a.db and ann@example.org"),
    ("tracking.uri=http://TOKEN@host:5000", "tracking.uri=http://***@host:5000"),  # a token alone
    ("postgresql://ann:p@ss@db/x", "postgresql://ann:***@db/x"),  # '@' in the password
    ("'http://u:a@b@h/p' and http://v:c@d/", "'http://u:***@h/p' and http://v:***@d/"),
    ("https://host/users/ann@example.org", "https://host/users/ann@example.org"),  # a path
    ("http://host:5000/users/ann@example.org", "http://host:5000/users/ann@example.org"),  # port, path
    ("postgresql://ann:ab/cd+ef@db:5432/x", "postgresql://ann:***@db:5432/x"),  # '/' in the password
    ("postgresql://db/x?user=ann&password=s3cret&x=1", "postgresql://db/x?user=ann&password=***&x=1"),
    ("https://h/api?token=abc123", "https://h/api?token=***"),
])
def test_redact_hides_passwords_in_urls(text, expected):
    assert redact(text) == expected


def test_the_printed_worker_command_masks_credentials():
    from sweeps.sweep import worker_command
    cmd = worker_command("s", ["storage.url=postgresql://ann:p@ss@db/o", "tracking.uri=http://TOK@h:5000",
                               "train.lr=0.1"])
    assert cmd == "make worker STUDY=s ARGS='storage.url=postgresql://ann:***@db/o tracking.uri=http://***@h:5000'"


def test_a_password_in_a_url_never_leaves_the_process(tmp_path, polarity_csv, capsys):
    """A credential-bearing URL among the overrides: not in MLflow (params, tags, config.yaml),
    not in the Optuna study, not on the terminal, not in the report."""
    from analysis.report import main as report_main
    from sweeps.sweep import main as sweep_main
    from tests.sweeps.test_sweep import overrides

    secret, token, at = "hunter2secret", "tok3nALONE", "pass@word9"  # user:pw, token@, '@' in pw
    urls = [f"postgresql://ann:{secret}@db/x", f"http://{token}@mlflow.example:5000",
            f"postgresql://ann:{at}@db/y"]
    out_all, err_all = "", ""
    for i, url in enumerate(urls):  # tracking.experiment: a key that takes any text
        args = overrides(tmp_path / f"case{i}", polarity_csv, "sweep.trials=1", f"tracking.experiment={url}")
        assert sweep_main(args) == 0
        assert report_main([*args, f"--out={tmp_path / f'rep{i}'}"]) == 0
        captured = capsys.readouterr()
        out_all, err_all = out_all + captured.out, err_all + captured.err
    out = type("Out", (), {"out": out_all, "err": err_all})
    assert "postgresql://ann:***@db/x" in out.out and "http://***@mlflow.example:5000" in out.out
    for s in (secret, token, at, "word9"):
        assert s not in out.out + out.err
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "polarity.csv"]
    assert any(p.name == "config.yaml" for p in stored) and any(p.suffix == ".db" for p in stored)
    leaks = [str(p) for p in stored for s in (secret, token, at, "word9") if s.encode() in p.read_bytes()]
    assert leaks == []


# --- a new MLflow store from the empty template ----------------------------------------

def test_a_new_mlflow_store_is_a_copy_of_the_empty_one_and_works_alike(tmp_path, monkeypatch):
    """The first new store runs MLflow's migrations and leaves an empty copy in the cache;
    a later new store is that copy (no migrations), with its own Default experiment folder,
    and takes runs like the first."""
    from sweeps.tracking import client as tracking
    monkeypatch.setenv("SEEDSWEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    template = tracking._empty_store()
    assert not template.exists()
    first = tracking.open_client(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    assert template.is_file()
    made = template.stat().st_mtime_ns

    def no_migrations(*a, **k):
        raise AssertionError("a store copied from the template ran MLflow's migrations")
    monkeypatch.setattr("mlflow.store.db.utils._initialize_tables", no_migrations)
    second = tracking.open_client(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    assert template.stat().st_mtime_ns == made
    assert second.get_experiment("0").artifact_location == str(tmp_path / "mlruns" / "0")
    for client in (first, second):
        run = client.create_run(client.create_experiment("x")).info.run_id
        client.log_metric(run, "dev_accuracy", 0.5, step=1)
        assert client.get_run(run).data.metrics == {"dev_accuracy": 0.5}
        assert [e.name for e in client.search_experiments()] == ["x", "Default"]


def test_the_machine_s_lock_folder_is_shared_by_every_user(tmp_path, monkeypatch):
    """A store reached over the network locks in the machine's temp folder: made with the
    first user's umask (0755, files 0644), a second user's `make final` got a traceback
    (review). The folder is sticky and writable by all, as /tmp; its lock files too."""
    import stat
    import tempfile

    from sweeps.core.locks import file_lock, store_lock_path
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    old = os.umask(0o022)
    try:
        path = store_lock_path("http://u:pw@mlflow.example:5000", tmp_path / "unused", "final-x")
        with file_lock(path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o1777
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    assert "pw" not in path.name


def test_a_sqlite_url_with_a_query_string_names_one_file(tmp_path):
    """`sqlite:///x.db?timeout=30` opens x.db (SQLAlchemy drops the query); the study store's
    init lock and the tracking store's first copy once went to files named after the whole
    URL (`x.db?timeout=30.init-lock`), because five modules each parsed the URL their own way
    (now one: sweeps/core/locks.sqlite_path)."""
    from sweeps.core.locks import store_lock_path
    from sweeps.tracking.client import local_path, open_client
    optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'optuna.db'}?timeout=30", tmp_path),
                        study_name="s")
    client = open_client(f"sqlite:///{tmp_path / 'mlflow.db'}?timeout=30")
    client.create_experiment("e")
    assert not [p.name for p in tmp_path.iterdir() if "?" in p.name]
    assert {"optuna.db", "mlflow.db"} <= {p.name for p in tmp_path.iterdir()}
    from sweeps.core.locks import sqlite_path
    url = f"sqlite:///{tmp_path / 'm.db'}?timeout=5"
    assert sqlite_path(url) == tmp_path / "m.db" and local_path(url) == tmp_path
    assert store_lock_path(url, tmp_path, "k").parent == tmp_path.resolve()
    assert sqlite_path("sqlite://") is None and sqlite_path("postgresql://h/db") is None
