"""Reports a person can open without an account: one self-contained HTML page of the runs."""

from genlab.reporting.report import build_report

__all__ = ["build_report"]
