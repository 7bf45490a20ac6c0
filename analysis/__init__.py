"""Reads tracked results (Optuna studies, MLflow runs) into pandas: tables, plots,
statistics. Never trains and never imports torch."""
