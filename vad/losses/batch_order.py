"""The training batch every method's loss receives from ``vad.lit_module.MethodModule``:
``cat([normal, anomalous])`` with as many of each, labels 0 then 1 (the official repositories'
order, on which RTFM's, UR-DMU's and BN-WVAD's terms rely)."""

from __future__ import annotations

from torch import Tensor


def normal_first_half(labels: Tensor) -> int | None:
    """B/2 when the (B,) ``labels`` are B/2 zeros then B/2 ones; None otherwise (the loss then
    says what it needs)."""
    half, odd = divmod(labels.shape[0], 2)
    if odd or not (bool((labels[:half] == 0).all()) and bool((labels[half:] == 1).all())):
        return None
    return half
