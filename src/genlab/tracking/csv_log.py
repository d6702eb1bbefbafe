"""The CSV history of a training run: what `dvc plots` and the report page read, written where
genlab.layout says (``<run_dir>/csv/metrics.csv``), so no config file spells that path."""

from __future__ import annotations

from pytorch_lightning.loggers import CSVLogger

from genlab.layout import CSV_DIR
from genlab.tracking.identity import RunContext


def csv_logger_for_run(context: RunContext) -> CSVLogger:
    return CSVLogger(save_dir=str(context.run_dir), name=CSV_DIR, version="")
