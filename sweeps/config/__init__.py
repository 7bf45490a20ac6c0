"""Configuration: what the user asked for, checked, as plain values.

- compose.py: Hydra composition of conf/ with overrides, the commands' one error path
- schema.py: every config key's type and range (unknown keys are errors)
- search_space.py: conf/search_space/*.yaml turned into `trial.suggest_*` calls
- workloads.py: a config turned into a model, a data task and training settings

Stands on sweeps/core and models/ only.
"""

from sweeps.config.compose import compose_config, run_cli

__all__ = ["compose_config", "run_cli"]
