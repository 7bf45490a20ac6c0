"""Models, their data pipelines and the training loop.

Plain values and tensors in, metrics out: nothing here imports optuna, mlflow or hydra.
"""
