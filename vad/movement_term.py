"""The capstone's training-time movement term: the change of the Lucas-Kanade movement value
(measured by :mod:`vad.video.lk_movement`) added to segment scores."""

from __future__ import annotations

import torch
from torch import Tensor

MAX_CHANGE = 10.0


def movement_change(movement: Tensor) -> Tensor:
    """``|m_t / m_{t-1} - 1|`` per segment with the capstone's guards: 0 for t = 0, 0 where
    ``m_{t-1} = 0`` and 0 where the change is >= 10 (tracking glitches). (..., T) -> (..., T)."""
    prev, cur = movement[..., :-1], movement[..., 1:]
    safe = torch.where(prev == 0, torch.ones_like(prev), prev)
    change = (cur / safe - 1).abs()
    change = torch.where((prev == 0) | (change >= MAX_CHANGE), torch.zeros_like(change), change)
    return torch.cat([torch.zeros_like(movement[..., :1]), change], dim=-1)
