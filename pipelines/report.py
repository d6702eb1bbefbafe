"""DVC stage report: one self-contained HTML page comparing the models."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.report import run_report

    return stage_main(run_report, cfg)


if __name__ == "__main__":
    main()
