"""Data pipelines: fetch or read a source once, then tensors batched by index."""
