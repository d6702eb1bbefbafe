"""DVC stage report: `python pipelines/report.py`.

A stage script only composes the config and hands it to its stage module: genlab.code_deps
derives the stage's code (dvc.yaml deps, the resume fingerprint) from that one import.
"""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages import report


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    return report.main(cfg)


if __name__ == "__main__":
    main()
