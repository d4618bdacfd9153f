"""Piper VITS in PyTorch: weights read from the voice's ONNX file, run on any torch device."""

from workers.engines.piper_torch.engine import PiperTorchEngine

__all__ = ["PiperTorchEngine"]
