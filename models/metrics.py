"""Metric names, defined once and used by training, tracking and analysis.

Pure Python on purpose: analysis imports this module without importing torch.
"""

TRAIN_LOSS = "train_loss"
DEV_PREFIX = "dev_"
TEST_PREFIX = "test_"

ACCURACY = "accuracy"
LOSS = "loss"
PERPLEXITY = "perplexity"

BEST_EPOCH = "best_epoch"
EPOCHS_RUN = "epochs_run"


def dev(name: str) -> str:
    """`dev("accuracy") == "dev_accuracy"`."""
    return DEV_PREFIX + name


def best_dev(name: str) -> str:
    """The best value of a dev metric over the epochs of one seed run."""
    return "best_" + dev(name)


def seed_mean(name: str) -> str:
    """The mean over seeds of a per-seed value, logged on the parent run."""
    return name + "_mean"


def seed_std(name: str) -> str:
    """The standard deviation over seeds (ddof=1) of a per-seed value."""
    return name + "_std"
