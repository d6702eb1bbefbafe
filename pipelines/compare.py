"""DVC stage compare: the leaderboard of every evaluated model."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.compare import run_compare

    return stage_main(run_compare, cfg)


if __name__ == "__main__":
    main()
