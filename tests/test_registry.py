"""The workload registry: every data source's test split behind the lockbox, every config
backed by a registration, and the layers of sweeps/ at most five modules deep."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models import registry
from models.data.lockbox import READ_LOG_ENV, TestSplitLocked
from models.errors import UserError
from tests.conftest import REPO

CONF = REPO / "conf"


def data_values(name: str) -> dict:
    """A data config's own values (its `defaults` merged by hand: sst2 builds on sst)."""
    raw = yaml.safe_load((CONF / "data" / f"{name}.yaml").read_text()) or {}
    values = {}
    for base in raw.pop("defaults", []):
        if isinstance(base, str) and base != "_self_":
            values |= data_values(base)
    return values | raw


def source_of(values: dict) -> str:
    return str(values.get("source") or values.get("corpus") or values["name"])


@pytest.mark.parametrize("name", sorted(registry.sources()))
def test_every_source_locks_its_test_split(name, tmp_path, monkeypatch):
    """Outside the final evaluation, a source's test split cannot be read: neither through
    the registry nor by calling the registered reader directly. The lock comes before any
    file is opened (an empty cache, no data config, no task), and nothing is logged."""
    log = tmp_path / "reads.log"
    monkeypatch.setenv(READ_LOG_ENV, str(log))
    src = registry.source(name)
    with pytest.raises(TestSplitLocked, match="final evaluation"):
        registry.test_split(src, {}, tmp_path, None)
    with pytest.raises(TestSplitLocked, match="final evaluation"):
        src.test({}, tmp_path, None)
    assert not log.exists()
    assert not list(tmp_path.iterdir()) or [p.name for p in tmp_path.iterdir()] == []


def run_as_final(code: str, **names):
    """Run `code` as if it were the final evaluation module (what `unlock` looks for)."""
    scope = {"__name__": "sweeps.final", **names}
    exec(compile(code, "<final>", "exec"), scope)
    return scope["out"]


def test_the_final_evaluation_reads_the_test_split_through_the_registry(polarity_csv, tmp_path, monkeypatch):
    log = tmp_path / "reads.log"
    monkeypatch.setenv(READ_LOG_ENV, str(log))
    data = {"name": "csv", "path": str(polarity_csv), "lowercase": True, "min_freq": 1, "max_vocab": None}
    src = registry.source("csv")
    task = registry.prepare(src, data, tmp_path)
    split = run_as_final("out = registry.test_split(src, data, cache, task)", registry=registry, src=src,
                         data=data, cache=tmp_path, task=task)
    assert len(split) > 0 and split.tokens.shape[0] == len(split)
    assert len(log.read_text().splitlines()) == 1  # one read, logged once
    # train and dev hold no test row
    rows = polarity_csv.read_text().splitlines()
    assert len(split) == sum(",test" in r for r in rows[1:])
    assert len(task.train) + len(task.dev) + len(split) == len(rows) - 1


def test_a_new_source_without_its_own_lock_is_still_locked(tmp_path):
    reads = []
    src = registry.register_data(registry.DataSource(
        name="unguarded-example", kind="classification", load=lambda data, cache: None,
        test=lambda data, cache, task: reads.append(1) or [],
    ))
    try:
        with pytest.raises(TestSplitLocked):
            src.test({}, tmp_path, None)
        with pytest.raises(TestSplitLocked):
            registry.source("unguarded-example").test({}, tmp_path, None)
        assert reads == []
        with pytest.raises(ValueError, match="registered twice"):
            registry.register_data(registry.DataSource(
                name="unguarded-example", kind="classification", load=lambda d, c: None,
                test=lambda d, c, t: []))
    finally:
        registry._SOURCES.pop("unguarded-example")


def test_every_data_config_names_a_registered_source_and_every_source_has_one():
    named = {}
    for path in sorted((CONF / "data").glob("*.yaml")):
        values = data_values(path.stem)
        named[path.stem] = source_of(values)
        assert named[path.stem] in registry.sources(), f"conf/data/{path.name}: {named[path.stem]!r}"
    assert set(registry.sources()) <= set(named.values())


def test_every_model_config_is_registered_with_a_metric():
    counted = {"ngram"}  # make train counts n-grams; nothing trains them over seeds
    configs = {p.stem for p in (CONF / "model").glob("*.yaml")} - counted
    assert configs == set(registry.model_specs())
    for spec in registry.model_specs().values():
        metric, direction = registry.metric(spec)
        assert spec.kind in registry.kinds() and direction in ("maximize", "minimize") and metric


def test_a_model_on_data_of_another_kind_is_refused():
    with pytest.raises(UserError, match="needs lm data.*choose one of the lm sources: brown, ptb, text"):
        registry.fits(registry.model("nplm"), registry.source("rt"), "rt")
    with pytest.raises(UserError, match="unknown model 'nope'; registered models: .*dan"):
        registry.model("nope")


def test_plugins_named_in_the_environment_are_imported(tmp_path):
    (tmp_path / "my_plugin.py").write_text(
        "from models.registry import ModelSpec, register_model\n"
        "register_model(ModelSpec(name='mine', kind='classification', build=lambda m, t, c: None))\n")
    code = "from models import registry; m = registry.model('mine'); print(m.kind, registry.metric(m))"
    env = {"PYTHONPATH": f"{REPO}:{tmp_path}", "SEEDSWEEP_PLUGINS": "my_plugin", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "classification ('accuracy', 'maximize')"


# ---- the layers of sweeps/

def sweeps_imports(module: str) -> set[str]:
    """The sweeps/ modules `module` imports, anywhere in it (inside functions too)."""
    mods = {p.stem for p in (REPO / "sweeps").glob("*.py")}
    out = set()
    for node in ast.walk(ast.parse((REPO / "sweeps" / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "sweeps":
            out |= {a.name for a in node.names if a.name in mods}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweeps."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sweeps.")}
    return out - {module}


@functools.cache
def deepest(module: str) -> tuple[str, ...]:
    return (module, *max((deepest(d) for d in sweeps_imports(module)), key=len, default=()))


def test_sweeps_import_graph_is_at_most_five_deep():
    modules = [p.stem for p in (REPO / "sweeps").glob("*.py") if p.stem != "__init__"]
    chains = {m: deepest(m) for m in modules}
    longest = max(chains.values(), key=len)
    assert len(longest) <= 5, " -> ".join(longest)
    # the commands stand beside each other, not on each other
    for command in ("final", "reconcile", "train"):
        assert not {"sweep", "study", "objective"} & set(deepest(command)), deepest(command)
    assert sweeps_imports("records") == set()  # the results schema stands on nothing


def test_results_names_are_written_in_the_schema_module_only():
    """Optuna attribute and MLflow tag names appear as literals in sweeps/records.py alone."""
    names = ["mlflow_run_id", "seed_values", "trial_state", "trial_number", "seed_epochs",
             "weights_deleted", "test_evaluations", "mlflow_experiment", "seeds_vectorized"]
    for path in [*(REPO / "sweeps").glob("*.py"), *(REPO / "analysis").glob("*.py")]:
        if path.name == "records.py":
            continue
        literals = {n.value for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not literals & set(names), f"{path.name}: {literals & set(names)}"


def test_final_evaluation_is_the_only_caller_of_test_split():
    callers = [p.relative_to(REPO) for folder in ("sweeps", "analysis", "benchmarks")
               for p in (REPO / folder).glob("*.py") if "test_split(" in p.read_text()]
    assert sorted(map(str, callers)) == ["sweeps/final.py", "sweeps/workloads.py"]
    assert Path(REPO / "sweeps" / "final.py").read_text().count("test_split(") == 1
