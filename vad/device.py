"""The torch device a command runs its network on (``device=auto|cpu|cuda|cuda:1``)."""

from __future__ import annotations


def resolve_device(name):
    """``"auto"`` (or empty): cuda when available, else cpu; any other value is torch's name."""
    import torch

    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
