"""The names of the scores genlab reports, ranks by and optimizes: one list for the evaluate
stage, the leaderboard, the config schema and the sweep objective."""

from __future__ import annotations

# torch-fidelity's keys, as written to metrics/<model>.json (model, floor and untrained)
FIDELITY_SCORES = ("fid", "isc_mean", "isc_std", "kid_mean", "kid_std")
# what compare.rank_by may name
RANKABLE = ("kid_mean", "fid", "isc_mean")
HIGHER_IS_BETTER = frozenset({"isc_mean"})
# what a hyperparameter search may minimize (train.objective.metric)
OBJECTIVES = ("kid_mean", "fid")
