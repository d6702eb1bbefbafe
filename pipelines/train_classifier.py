"""DVC stage train_classifier: `python pipelines/train_classifier.py data=digits`.

A stage script only composes the config and hands it to its stage module: genlab.code_deps
derives the stage's code (dvc.yaml deps, the resume fingerprint) from that one import.
"""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages import train_classifier


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    return train_classifier.main(cfg)


if __name__ == "__main__":
    main()
