"""torch-fidelity feature extractor backed by the genlab DomainClassifier.

Registered as ``genlab-classifier`` so that torch-fidelity's own FID / IS / KID code (and its
statistics cache) runs on it exactly as on Inception. It reads weights only from the local file
written by ``save_classifier``: it never downloads anything.
"""

from __future__ import annotations

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from genlab.evaluation.classifier_training import load_classifier
from genlab.networks.classifier import to_classifier_input

CLASSIFIER_EXTRACTOR = "genlab-classifier"

_FEATURES = ("features", "logits", "logits_unbiased")
_DEFAULT_LAYERS = {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}


class FeatureExtractorDomainClassifier(FeatureExtractorBase):
    """uint8 (B, 3, H, W) -> the classifier's penultimate features and logits.

    ``features``: penultimate vector (FID, KID, PRC). ``logits``: the classifier's own logits,
    whose softmax is its p(y|x) (IS). ``logits_unbiased``: logits without the head's bias, named
    like Inception's layer for callers that pass ``feature_layer_isc="logits_unbiased"``.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        vassert(
            feature_extractor_weights_path is not None,
            f'Feature extractor "{name}" needs feature_extractor_weights_path: the file written '
            f"by the `train_classifier` stage (it is never downloaded)",
        )
        self.classifier = load_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting uint8 tensor images")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {tuple(x.shape)}")
        model = self.classifier
        x = to_classifier_input(x, model.in_channels, model.image_size)
        features = model.features(x)
        unbiased = features @ model.head.weight.T
        out = {
            "features": features,
            "logits_unbiased": unbiased,
            "logits": unbiased + model.head.bias,
        }
        return tuple(out[name].to(torch.float32) for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return _FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return _DEFAULT_LAYERS[metric]

    @staticmethod
    def can_be_compiled():
        return False  # tiny model: compiling costs more than it saves

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 32, 32]) * 255).to(torch.uint8)


def register() -> None:
    """Register the extractor once per process; a module reload replaces the stale class."""
    cls = FeatureExtractorDomainClassifier
    existing = FEATURE_EXTRACTORS_REGISTRY.get(CLASSIFIER_EXTRACTOR)
    if existing is cls:
        return
    if existing is None:
        register_feature_extractor(CLASSIFIER_EXTRACTOR, cls)
    elif (existing.__module__, existing.__qualname__) == (cls.__module__, cls.__qualname__):
        FEATURE_EXTRACTORS_REGISTRY[CLASSIFIER_EXTRACTOR] = cls
    else:
        raise RuntimeError(
            f'torch-fidelity feature extractor "{CLASSIFIER_EXTRACTOR}" is already registered '
            f"to {existing.__module__}.{existing.__qualname__}"
        )


register()
