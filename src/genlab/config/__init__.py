"""Configuration: the schema of the sections that are not ``_target_`` nodes (``schema``), the
checks that run before any work (``validate``), and what Hydra's runtime says about a run
(``hydra_runtime``). Nothing is imported here, so that ``import genlab`` (which registers the
``genlab_run_dir`` resolver) stays free of Hydra for `genlab generate`."""
