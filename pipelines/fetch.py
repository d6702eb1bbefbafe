"""DVC stage fetch: `python pipelines/fetch.py data=digits` writes data/<name>/{train,test}.npz."""

import hydra

import genlab  # noqa: F401  (must precede torchvision imports)
from genlab.stages.entry import stage_main


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg):
    from genlab.stages.fetch import run_fetch

    return stage_main(run_fetch, cfg)


if __name__ == "__main__":
    main()
