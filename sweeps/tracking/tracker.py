"""Every MLflow call of the project lives here.

The local default is an SQLite store under runs/ at the repo root (the file store is
deprecated); MLFLOW_TRACKING_URI, or tracking.uri in the config, points elsewhere.
One parent run per configuration, one nested run per seed, all through the client API
(no fluent global run state), so one process can track many trials.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from models.errors import UserError
from sweeps.core.records import (
    COMMAND_TAG,
    CONFIG_FILE,
    LEDGER_EXPERIMENT,
    TEST_EVALUATIONS_METRIC,
    deleted_tag,
)
from sweeps.core.redact import redact
from sweeps.tracking.client import (
    TRAINING_KIND,
    check_reachable,
    git_commit,
    local_path,
    mark_as_training,
    open_client,
    resolve_uri,
)
from sweeps.tracking.writer import BackgroundWrites, chunks

_MAX_PARAM = 6000  # MLflow's longest param value


class Tracker:
    """One MLflow experiment; starts, logs to and ends runs by id.

    Long because it is the one door to MLflow (guideline 2): each method is a few lines
    around one client call, with the ledger of test evaluations among them."""

    @classmethod
    def of_run(cls, run_id: str, uri: str | None = None) -> Tracker:
        """The tracker of the experiment that holds `run_id`."""
        client = open_client(resolve_uri(uri))
        try:
            run = client.get_run(run_id)
        except MlflowException as e:
            raise UserError(f"no MLflow run {run_id!r} in {redact(resolve_uri(uri))}; copy the id from "
                            "`make train`'s output or the MLflow UI.") from e
        return cls(client.get_experiment(run.info.experiment_id).name, uri)

    def __init__(self, experiment: str, uri: str | None = None, artifacts: str | None = None,
                 curves_every: float = 0.0):
        """`curves_every`: seconds between the background writes of one run's per-epoch
        metrics (`log_metrics(wait=False)`); what comes between is held and written with the
        next write, the run's closing metrics or its end. 0: every call is written. A sweep
        holds them (one call a run instead of one an epoch); training that checkpoints, whose
        curves must be stored before a kill, does not."""
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store-migration chatter
        self.uri = resolve_uri(uri)
        self.experiment, self._artifacts = experiment, artifacts
        self._experiment_id: str | None = None
        self._client: MlflowClient | None = None
        self._writes = BackgroundWrites(lambda run_id, batch: self.client.log_batch(run_id, metrics=batch),
                                        curves_every)
        self._commit: str | None = None

    @property
    def client(self) -> MlflowClient:
        """Opened on first use: a command that fails before it tracks anything creates no store."""
        if self._client is None:
            self._client = open_client(self.uri)
        return self._client

    def check_reachable(self) -> None:
        """Raise EnvironmentFailure now if the tracking server does not answer."""
        if self._client is None:
            check_reachable(self.uri)

    @property
    def experiment_id(self) -> str:
        """The experiment's id; it is created on first use, so a command that fails before
        it tracks anything leaves no empty experiment behind."""
        if self._experiment_id is None:
            self._experiment_id = self._get_or_create(self.experiment, self._artifacts)
        return self._experiment_id

    def _get_or_create(self, name: str, artifacts: str | None) -> str:
        """Race-safe: another process may create the experiment between the two calls."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return mark_as_training(self.client, found)
        try:
            return self.client.create_experiment(
                name, artifact_location=self._artifact_location(name, artifacts), tags=dict([TRAINING_KIND]))
        except MlflowException:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return mark_as_training(self.client, found)

    def _artifact_location(self, experiment: str, artifacts: str | None) -> str | None:
        """A folder for a new experiment's artifacts beside a local store; None: the server's."""
        root = Path(artifacts) if artifacts else None
        if root is None and (local := local_path(self.uri)) is not None:
            root = local / "artifacts"
        return (root.resolve() / re.sub(r"[^\w.-]+", "_", experiment)).as_uri() if root else None

    def start_run(self, name: str, params: Mapping[str, Any] = (), tags: Mapping[str, str] = (),
                  parent_id: str | None = None, wait: bool = True) -> str:
        """A run with `tags` and `params`; `wait=False`: the params are written by the
        background writer (the run's end waits for them), so the caller goes on at once."""
        tags = {k: redact(str(v)) for k, v in dict(tags).items()}
        tags[MLFLOW_RUN_NAME] = name
        if parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_id
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        run_id = run.info.run_id
        items = [Param(k, redact(str(v))[:_MAX_PARAM]) for k, v in dict(params).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self._write(run_id, wait, self.client.log_batch, run_id, params=items[i:i + 100])
        return run_id

    def start_config_run(self, name: str, params: Mapping[str, Any], config_yaml: str | Callable[[], str],
                         command: str, tags: Mapping[str, str] = (), wait: bool = True) -> str:
        """A configuration's parent run: params, the resolved config (text, or a function
        that renders it), commit and command line (its seed runs:
        sweeps/tracking/seed_runs.py). `wait=False` (a sweep's trials): only the run's
        creation waits; its params and config file are written in the background while the
        trial's models are built, and the run's end waits for them."""
        if self._commit is None:  # the code this process runs: asked of git once, not a trial
            self._commit = git_commit()
        run_id = self.start_run(name, params, {MLFLOW_GIT_COMMIT: self._commit,
                                               COMMAND_TAG: command, **dict(tags)}, wait=wait)
        client = self.client

        def log_config() -> None:
            text = config_yaml() if callable(config_yaml) else config_yaml
            client.log_text(run_id, redact(text), CONFIG_FILE)
        self._write(run_id, wait, log_config)
        return run_id

    def _write(self, run_id: str, wait: bool, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """`call(*args, **kwargs)`, a write to run `run_id`: now, or with `wait=False` in the
        background, in order (the run's end waits for it: sweeps/tracking/writer.py)."""
        if wait:
            call(*args, **kwargs)
        else:
            self._writes.submit(run_id, call, *args, **kwargs)

    def log_metrics(self, run_id: str, values: Mapping[str, float], step: int = 0,
                    wait: bool = True) -> None:
        """All of `values` in one batched call, with the run's held curves. `wait=False`
        (per-epoch curves): written by this tracker's one background thread, in order, while
        training goes on, at most every `curves_every` seconds; `end_run` (or `flush`)
        writes what is held, waits for the run's writes and raises what failed."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in values.items()]
        if wait:
            for batch in chunks(self._writes.take_held(run_id) + items):
                self.client.log_batch(run_id, metrics=batch)
        else:
            self._writes.hold(run_id, items)

    def flush(self, run_id: str) -> None:
        """Write the run's held curves and wait until its background writes are stored
        (raises what failed)."""
        self._writes.flush(run_id)

    def set_tags(self, run_id: str, tags: Mapping[str, Any], wait: bool = True) -> None:
        """`wait=False`: written by the background writer; the run's end waits for it."""
        self._write(run_id, wait, self.client.log_batch, run_id,
                    tags=[RunTag(k, redact(str(v))) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def child_runs(self, parent_id: str) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{MLFLOW_PARENT_RUN_ID} = '{parent_id}'")

    def every_run(self) -> list:
        """Every run of the experiment (parents and seed runs), in one search."""
        return self.client.search_runs([self.experiment_id], max_results=50000)

    def config_runs(self) -> list:
        """The experiment's configuration (parent) runs, newest first; none, and no
        experiment created, when it does not exist yet."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                                       max_results=1000)
        return [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]

    def delete_artifacts(self, run_id: str, folder: str, artifact_uri: str | None = None) -> None:
        """Remove one artifact folder of a run (saved weights that can no longer matter);
        `artifact_uri`: the run's, when a search has read it already."""
        repo = get_artifact_repository(artifact_uri or self.client.get_run(run_id).info.artifact_uri)
        try:
            repo.delete_artifacts(folder)
        except (FileNotFoundError, OSError):
            pass  # already gone
        self.set_tags(run_id, {deleted_tag(folder): "true"})

    def end_stale(self, parent_id: str, status: str = "KILLED") -> None:
        """End a parent run and its seed runs that a killed process left RUNNING."""
        for run in [*self.child_runs(parent_id), self.client.get_run(parent_id)]:
            if run.info.status == "RUNNING":
                self.end_run(run.info.run_id, status)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of one metric of a run, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

    def load_text(self, run_id: str, path: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()

    def download(self, run_id: str, path: str, folder: Path) -> Path | None:
        """An artifact of a run in `folder`, or None if the run has no such artifact."""
        try:
            return Path(self.client.download_artifacts(run_id, path, str(folder)))
        except (MlflowException, OSError):
            return None

    def ledger(self, scope: str) -> list[dict[str, str]]:
        """Every test evaluation recorded for `scope` (a study, or a train experiment) in the
        `lockbox` experiment, oldest first; deleted runs count too (`deleted`), and one still
        RUNNING was started and never finished (a kill while the test split was open)."""
        exp = self.client.get_experiment_by_name(LEDGER_EXPERIMENT)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], filter_string=f"params.scope = '{scope}'",
                                       run_view_type=ViewType.ALL, order_by=["attributes.start_time ASC"])
        return [dict(r.data.params) | {"run_id": r.info.run_id, "status": r.info.status,
                                       "deleted": str(r.info.lifecycle_stage == "deleted")} for r in runs]

    def evaluations_on_runs(self) -> int:
        """Test evaluations counted on this experiment's runs (`test_evaluations`), deleted
        runs included: the second record of the ledger."""
        runs = self.client.search_runs([self.experiment_id],
                                       filter_string=f"metrics.{TEST_EVALUATIONS_METRIC} > 0",
                                       run_view_type=ViewType.ALL)
        return int(sum(r.data.metrics[TEST_EVALUATIONS_METRIC] for r in runs))

    def start_test_evaluation(self, entry: Mapping[str, Any]) -> str:
        """A ledger entry, written before the test split is read: a `lockbox` run left
        RUNNING until `finish_test_evaluation`."""
        exp_id = self._get_or_create(LEDGER_EXPERIMENT, None)
        run = self.client.create_run(exp_id, run_name=f"{entry['scope']} test", tags={
            MLFLOW_RUN_NAME: f"{entry['scope']} test", MLFLOW_GIT_COMMIT: str(entry["git_commit"])})
        self.client.log_batch(run.info.run_id, params=[Param(k, redact(str(v))[:_MAX_PARAM])
                                                       for k, v in entry.items()])
        return run.info.run_id

    def finish_test_evaluation(self, ledger_run: str, test_metrics: Mapping[str, float]) -> None:
        self.log_metrics(ledger_run, test_metrics)
        self.end_run(ledger_run)

    def reopen(self, run_id: str) -> None:
        """A run ended KILLED (or left RUNNING by a kill) marked RUNNING again: it goes on."""
        self.client.update_run(run_id, status="RUNNING")

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """status: FINISHED, FAILED or KILLED. The run's pending writes are stored first; if
        one failed (a full disk), the run ends FAILED and the failure is raised, but a kill
        stays a kill: a run ended KILLED ends so, and its trial runs again on resume."""
        try:
            self.flush(run_id)
        except Exception:
            if status == "KILLED":
                with contextlib.suppress(Exception):
                    self.client.set_terminated(run_id, status)
                return
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, status)
