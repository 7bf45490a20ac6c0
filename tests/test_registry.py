"""The workload registry: every data source's test split behind the lockbox, every config
backed by a registration, and the rooms of sweeps/ on their floors: no import circle, no
room importing one above it, no file over 300 lines nor class over 150 without a reason."""

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


# ---- the rooms of sweeps/ and their floors

PACKAGES = ("models", "sweeps", "analysis", "benchmarks")
# each room of sweeps/ and the rooms it may import (its own included); the commands at the
# top of sweeps/ (sweep, train, final, paper, doctor, ui, mlflow_server, api) may import any
ROOMS = {
    "core": {"core"},
    "config": {"core", "config"},
    "store": {"core", "store"},
    "tracking": {"core", "tracking"},
    "search": {"core", "config", "store", "tracking", "search"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


@functools.cache
def imports_of(module: str) -> frozenset[str]:
    """The project modules `module` imports, anywhere in it (inside functions too)."""
    known, out = project_modules(), set()
    path = known[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]).strip(".")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return frozenset(m for m in out if m in known and m != module)


def room(module: str) -> str | None:
    """The room of a sweeps/ module (core, config, store, tracking, search), else None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "sweeps" and len(parts) > 1 and parts[1] in ROOMS else None


def test_no_import_circle_anywhere():
    """No module reaches itself through its imports, those inside functions included: an
    import inside a function cannot hide a circle."""
    state: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        state[module] = 1
        for other in sorted(imports_of(module)):
            if state.get(other) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(other):], other]))
            if other not in state:
                visit(other, (*path, other))
        state[module] = 2

    for module in sorted(project_modules()):
        if module not in state:
            visit(module, (module,))


def test_each_room_of_sweeps_imports_only_the_rooms_below_it():
    for module in project_modules():
        if (mine := room(module)) is None:
            continue
        for other in imports_of(module):
            theirs = room(other) if other.startswith("sweeps.") else "outside"
            assert theirs == "outside" and not other.startswith("sweeps") or theirs in ROOMS[mine], \
                f"{module} ({mine}) imports {other}: {mine} may import only {sorted(ROOMS[mine])}"


@functools.cache
def reach(module: str) -> frozenset[str]:
    return frozenset(imports_of(module)).union(*(reach(m) for m in imports_of(module)))


def test_the_commands_stand_beside_each_other_on_the_rooms():
    # the final evaluation, the doctor and a single training never load the search loop
    for command in ("final", "doctor", "train"):
        loop = {"sweeps.sweep", "sweeps.search.study", "sweeps.search.objective"} & reach(f"sweeps.{command}")
        assert not loop, (command, loop)
    assert imports_of("sweeps.core.records") == frozenset()  # the results schema stands on nothing
    # the rooms never import a command
    commands = {m for m in project_modules() if m.count(".") == 1 and m.startswith("sweeps.")
                and m.split(".")[1] not in ROOMS}
    for module in project_modules():
        if room(module):
            assert not imports_of(module) & commands, (module, imports_of(module) & commands)


def test_the_search_loop_is_at_most_five_rooms_deep():
    """The longest chain of imports inside sweeps/, counted in modules, from a command down."""

    @functools.cache
    def deepest(module: str) -> tuple[str, ...]:
        inside = [m for m in imports_of(module) if m.startswith("sweeps.") and m.count(".") == 2]
        return (module, *max((deepest(m) for m in inside), key=len, default=()))

    longest = max((deepest(m) for m in project_modules() if m.startswith("sweeps.") and m.count(".") == 2),
                  key=len)
    assert len(longest) <= 5, " -> ".join(longest)


# files over 300 lines still to split, each with its reason (issue 35); the list only shrinks
LONG_FILES: dict[str, str] = {}


def test_no_source_file_over_300_lines():
    long = {str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
            if len(p.read_text().splitlines()) > 300}
    assert long <= set(LONG_FILES), sorted(long - set(LONG_FILES))
    assert set(LONG_FILES) <= long, f"no longer long, take off LONG_FILES: {sorted(set(LONG_FILES) - long)}"


def test_no_class_over_150_lines_without_a_reason_in_its_docstring():
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 150:
                    doc = ast.get_docstring(node) or ""
                    size = node.end_lineno - node.lineno + 1
                    assert "Long because" in doc, f"{path.relative_to(REPO)}: class {node.name} is " \
                        f"{size} lines; split it or say why in its docstring ('Long because ...')"


def test_results_names_are_written_in_the_schema_module_only():
    """Optuna attribute and MLflow tag names appear as literals in sweeps/core/records.py alone."""
    names = ["mlflow_run_id", "seed_values", "trial_state", "trial_number", "seed_epochs",
             "weights_deleted", "test_evaluations", "mlflow_experiment", "seeds_vectorized"]
    for path in [*(REPO / "sweeps").rglob("*.py"), *(REPO / "analysis").rglob("*.py")]:
        if path.name == "records.py":
            continue
        literals = {n.value for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not literals & set(names), f"{path.name}: {literals & set(names)}"


def test_final_evaluation_is_the_only_caller_of_test_split():
    callers = [p.relative_to(REPO) for folder in ("sweeps", "analysis", "benchmarks")
               for p in (REPO / folder).rglob("*.py") if "test_split(" in p.read_text()]
    assert sorted(map(str, callers)) == ["sweeps/config/workloads.py", "sweeps/final.py"]
    assert Path(REPO / "sweeps" / "final.py").read_text().count("test_split(") == 1
