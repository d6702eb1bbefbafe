"""Export trained generators for use outside genlab, and label everything they produce.

TorchScript and ONNX exports are only published after the reloaded file reproduces the eager
generator (``torchscript``, ``onnx``); images carry IPTC "trained algorithmic media" provenance
(``provenance``); a Markdown model card documents use, limits and metrics (``model_card``).
"""
