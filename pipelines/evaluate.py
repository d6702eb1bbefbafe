"""DVC stage evaluate@<model>: FID / IS / KID of the trained generator (`model=<name>`)."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.evaluate import run_evaluate

    return stage_main(run_evaluate, cfg)


if __name__ == "__main__":
    main()
