"""DVC stage export@<model>: TorchScript, ONNX, sample grid and model card (`model=<name>`)."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.export import run_export

    return stage_main(run_export, cfg)


if __name__ == "__main__":
    main()
