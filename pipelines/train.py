"""DVC stage train@<model>: `python pipelines/train.py model=dcgan` (any Hydra override works)."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.train import run_train
    from genlab.training.objective import sweeper_return

    return sweeper_return(cfg, stage_main(run_train, cfg))


if __name__ == "__main__":
    main()
