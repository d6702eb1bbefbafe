"""Make a CUDA build of torchvision importable on a CPU-only torch.

PyPI only serves CUDA builds of torchvision; its ``_C`` extension needs ``libtorch_cuda.so``,
so ``import torchvision`` (and with it torchmetrics, Lightning and torch-fidelity) fails on a
CPU torch with ``operator torchvision::nms does not exist``. Defining the two op schemas that
torchvision's meta registrations expect lets the pure-Python parts (datasets, transforms,
``utils.make_grid``) work. On a matching torch, ``_C`` loads and nothing is changed.
This must run before torchvision is first imported, in every process: ``import genlab`` does it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the op registrations alive for the life of the process


def ensure_torchvision_importable() -> None:
    global _library
    if _library is not None:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    import torch

    extension = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if extension is not None:
        try:
            torch.ops.load_library(str(extension))
            _library = "loaded"
            return
        except OSError:
            pass
    if hasattr(torch.ops.torchvision, "nms"):
        _library = "present"
        return
    _library = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - schemas only
    for schema in _SCHEMAS.values():
        _library.define(schema)
