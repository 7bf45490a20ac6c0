"""MLflow experiments as the UI reads them."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from sweeps.tracking import TRAINING_KIND, Tracker

KIND = "mlflow.experimentKind"


def test_experiments_new_and_old_are_marked_as_model_training(tmp_path):
    """MLflow 3's UI shows an experiment without this tag as a GenAI app (traces, no runs)
    and infers one itself; ours say model training, and one made earlier without the tag
    gets it when a run is added to it (a resumed sweep)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("dan-rt-random")  # as an earlier version left it
    assert KIND not in client.get_experiment(old).tags
    assert TRAINING_KIND == (KIND, "custom_model_development")  # the UI's "Machine learning"

    resumed = Tracker("dan-rt-random", uri)
    resumed.end_run(resumed.start_run("trial 1"))
    new = Tracker("dan-rt", uri)
    new.end_run(new.start_run("dan-rt"))
    assert resumed.experiment_id == old
    for exp in (old, new.experiment_id):
        assert client.get_experiment(exp).tags[KIND] == "custom_model_development"
