"""DVC stage train_classifier: the CNN whose features drive the offline metrics."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.train_classifier import run_train_classifier

    return stage_main(run_train_classifier, cfg)


if __name__ == "__main__":
    main()
