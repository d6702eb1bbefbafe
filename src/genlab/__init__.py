"""genlab: experiment orchestration for image generative models."""

from genlab._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    def run_dir(model_name: str) -> str:
        from genlab.tracking.sweep import job_run_dir

        return job_run_dir(model_name)

    OmegaConf.register_new_resolver("genlab_run_dir", run_dir, replace=True)


_register_resolvers()

__version__ = "0.1.0"
