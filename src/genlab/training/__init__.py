"""Pieces around Lightning's fit loop: callbacks and checkpoint bookkeeping."""
