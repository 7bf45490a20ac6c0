"""The results schema: every name the platform writes to Optuna and MLflow, in one place.

Sweeps write these names; `make final`, `make report`, `make doctor`, the summary table
and the Python API read them back through the same constants and readers, so a renamed
attribute cannot leave a reader behind. Optuna holds the study and its trials (user
attributes below); MLflow holds one parent run per configuration (tags, params and the
seed-mean metrics of models/metrics.py) and one nested run per seed (param `seed`, the
per-epoch metrics and the best weights as an artifact).

Plain Python, no imports from sweeps/: every other module may stand on it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# ---- Optuna: user attributes of a trial
MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's parent run in MLflow
SEEDS = "seeds"  # the K seeds drawn for the trial, in order
SEED_VALUES = "seed_values"  # each seed's best dev value, in seed order
STD = "std"  # sample std of SEED_VALUES (the trial's value is their mean)
BEST_EPOCHS = "best_epochs"  # each seed's best epoch
EPOCHS_RUN = "epochs_run"  # epochs of the longest-running seed
STOPPED_EARLY = "stopped_early"  # ended by the sweep's patience stop (not pruned)
RACED_OUT = "raced_out"  # seeds_policy=race: why the trial got fewer than K seeds (also a tag)
SEED_EPOCHS = "seed_epochs"  # training compute of a trial: epochs summed over its seeds
COMPUTE_SECONDS = "compute_seconds"  # training seconds summed over its seeds
BUILD_SECONDS = "build_seconds"  # seconds building its seeds' models and optimizers
WEIGHTS_SAVED = "weights_saved"  # its seed runs got weights (false: nothing to delete later)
INACTIVE = "inactive"  # values conditional entries took without being sampled ({key: value})
WORKER = "worker"  # "host:pid" of the process running the trial
INTERRUPTED = "interrupted"  # the trial was cut short (killed worker, Ctrl-C): not in the budget
RETRY_OF = "retry_of"  # number of the interrupted trial whose configuration this one retries
FAIL_REASON = "fail_reason"  # also a tag on the trial's parent run
FIXED_PARAMS = "fixed_params"  # Optuna's system attribute holding an enqueued trial's params

# ---- Optuna: user attributes of a study
COMMAND = "command"  # the make command that reruns (resumes) the study
IDENTITY = "identity"  # settings, search space and metric (sweeps/search/identity.py)
OVERRIDES = "overrides"  # the overrides the study was made with: `make worker` joins with them
FINGERPRINT = "fingerprint"  # a hash of IDENTITY
MLFLOW_EXPERIMENT = "mlflow_experiment"  # the study's experiment (same name unless renamed)
MONITOR = "monitor"  # the dev metric, e.g. "accuracy"
PARAMS = "params"  # the search-space keys, in file order
BUDGET = "budget"  # {"trials": B, "command": C}: the latest start's budget not below the trials
#                   done (grid: at most the grid) and the command that runs the search to it
TEST_EVALUATIONS = "test_evaluations"  # the study's own copy of its lockbox ledger: a list
WEIGHTS_DELETED = "weights_deleted"  # trials whose seed weights are gone
SEEDS_POLICY = "seeds_policy"  # {policy, min_seeds, alpha, delta, seeds}: race draws the K seeds once

# ---- MLflow: a configuration's parent run
TRIAL_NUMBER = "trial_number"  # tag: the Optuna trial it belongs to
STUDY = "study"  # tag: the Optuna study it belongs to
TRIAL_STATE = "trial_state"  # tag: RUNNING, COMPLETE, PRUNED or FAIL
SEEDS_VECTORIZED = "seeds_vectorized"  # tag: the K seeds were trained stacked as one model
SEEDS_RUN_TAG = "seeds_run"  # tag: how many of the K seeds a raced trial ran
COMMAND_TAG = "command"  # tag: the command line that made the run
CONFIG_FILE = "config.yaml"  # artifact: the resolved config
TRIAL_PARAM = "trial"  # param: the trial number
SEEDS_PARAM, K_SEEDS_PARAM = "seeds", "k_seeds"  # params: the seeds (space-separated), K
TEST_EVALUATIONS_METRIC = "test_evaluations"  # metric: how often its test split was read
PAPER_CELL = "paper_cell"  # tag: <table>/<row>/<column> of a paper table (make paper)
MIXED_FROM = "mixed_from"  # tag: the run whose networks a paper cell mixes with the trigram
HARDWARE = "hardware"  # tag: CPU or GPU, cores and torch threads, torch version
# ---- MLflow: a seed's run
SEED_PARAM = "seed"  # param
WEIGHTS = "weights"  # artifact folder: best-<seed>.pt
# ---- MLflow: the lockbox ledger
LEDGER_EXPERIMENT = "lockbox"  # one run per test evaluation ever made

# the config sections a configuration's run does not record: the sweep's own settings
SWEEP_ONLY = ("search_space", "sampler", "pruner", "storage", "sweep")


def weights_file(seed: int) -> str:
    """The file name of a seed's best weights."""
    return f"best-{seed}.pt"


def weights_artifact(seed: int) -> str:
    """The artifact path of a seed's best weights in its run."""
    return f"{WEIGHTS}/{weights_file(seed)}"


def deleted_tag(folder: str) -> str:
    """The tag that marks a run's artifact folder as deleted on purpose."""
    return f"deleted.{folder}"


def parent_tags(trial_number: int, study: str) -> dict[str, str]:
    """The tags of a trial's parent run when it starts."""
    return {TRIAL_NUMBER: str(trial_number), STUDY: study, TRIAL_STATE: "RUNNING"}


def seed_of(params: Mapping[str, str]) -> int:
    """The seed of a seed run, from its params."""
    return int(params[SEED_PARAM])


def in_seed_order(children: Sequence[Any], seeds: Sequence[str]) -> list[Any]:
    """A parent run's seed runs (MLflow runs) in the order of its `seeds` param, as strings;
    MLflow lists them in no such order. A run whose seed is not named goes last."""
    rank = {seed: i for i, seed in enumerate(seeds)}
    return sorted(children, key=lambda c: rank.get(c.data.params.get(SEED_PARAM), len(seeds)))


def trial_of(tags: Mapping[str, str]) -> tuple[str | None, int | None]:
    """The (study, trial number) a parent run belongs to; (None, None) for `make train`."""
    number = tags.get(TRIAL_NUMBER)
    return tags.get(STUDY), int(number) if number is not None else None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config values as dotted keys, as they are recorded as MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value): how seed means are recorded."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def trial_attrs(result: Any, pruned: bool) -> dict[str, Any]:
    """The user attributes a finished trial records of its ConfigResult (sweeps/search/seeds.py)."""
    seeds = result.seed_results
    return {STD: result.std, SEED_VALUES: result.best_values,
            BEST_EPOCHS: [r.best_epoch for r in seeds], EPOCHS_RUN: max(r.epochs_run for r in seeds),
            STOPPED_EARLY: result.stopped and not pruned, SEED_EPOCHS: sum(r.epochs_run for r in seeds),
            COMPUTE_SECONDS: sum(r.compute_seconds for r in seeds),
            BUILD_SECONDS: sum(r.build_seconds for r in seeds), WEIGHTS_SAVED: result.weights_saved}
