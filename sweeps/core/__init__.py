"""What every room of sweeps/ stands on, importing nothing else of sweeps/:

- records.py: the results schema, every Optuna attribute and MLflow tag name (defined once)
- paths.py: where the project lives (conf/, the local runs/ store)
- redact.py: secrets kept out of logs, stores and reports
- faults.py: environment failures (exit 75) and the fault points tests inject them at
- locks.py: file locks shared by processes on one machine
"""
