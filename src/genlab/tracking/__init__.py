"""Experiment tracking: W&B that never fails a run, plus run identity."""
