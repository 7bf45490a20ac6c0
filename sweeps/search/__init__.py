"""The search loop: trials of K seeds, from a study's first trial to its summary.

- study.py: `Sweep`, one worker's loop over a study's trials
- objective.py: one trial: sample a configuration, train its seeds, report, prune
- seeds.py: K seeds of one configuration trained and tracked (a parent run, a child per seed)
- racing.py, pruning.py: stopping a configuration early (seed races, patience)
- identity.py: a study's fingerprint and the command that resumes it
- progress.py, neighbours.py: the lines a sweep prints; other trainings on this machine
- reconcile.py: Optuna and MLflow made to agree, trial for trial

Stands on config, store, tracking and core. Modules are imported by name (the package
re-exports nothing), so `make sweep` prints its first line before optuna and torch load.
"""
