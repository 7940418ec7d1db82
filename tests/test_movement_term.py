"""The capstone's movement-change term (vad.movement_term)."""

from __future__ import annotations

import pytest
import torch

from vad.movement_term import movement_change


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def loop_change(values):
    out = [0.0]
    for k in range(1, len(values)):
        prev, cur = values[k - 1], values[k]
        if prev == 0:
            out.append(0.0)
            continue
        c = abs(cur / prev - 1)
        out.append(0.0 if c >= 10 else c)
    return out


def test_hand_example():
    # [2, 3, 0, 5, 1, 20]: t0 -> 0; 3/2-1 = 0.5; |0/3-1| = 1; prev 0 -> 0; |1/5-1| = 0.8; 20/1-1 = 19 >= 10 -> 0
    got = movement_change(t([2.0, 3.0, 0.0, 5.0, 1.0, 20.0]))
    torch.testing.assert_close(got, t([0.0, 0.5, 1.0, 0.0, 0.8, 0.0]), rtol=0, atol=1e-12)


def test_first_value_is_zero():
    assert movement_change(t([5.0, 6.0]))[0].item() == 0.0
    assert movement_change(t([7.0])).tolist() == [0.0]


def test_previous_zero_gives_zero_not_inf():
    got = movement_change(t([0.0, 4.0, 0.0, 0.0]))
    assert torch.all(torch.isfinite(got))
    # 0 -> 4: prev 0 -> 0 ; 4 -> 0: |0/4 - 1| = 1 ; 0 -> 0: prev 0 -> 0
    assert got.tolist() == [0.0, 0.0, 1.0, 0.0]


def test_change_threshold_boundary():
    # 1 -> 11: change exactly 10 -> 0 ; 1 -> 10.9: 9.9 kept
    assert movement_change(t([1.0, 11.0])).tolist() == [0.0, 0.0]
    assert movement_change(t([1.0, 10.5]))[1].item() == pytest.approx(9.5)


def test_batched_matches_rows():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(4, 32, generator=g, dtype=torch.float64) * 5
    m[1, 3] = 0.0
    m[2, 10] = 0.01
    m[2, 11] = 5.0  # 5 / 0.01 - 1 = 499 >= 10 -> glitch -> 0
    got = movement_change(m)
    assert got.shape == (4, 32)
    for b in range(4):
        torch.testing.assert_close(got[b], t(loop_change(m[b].tolist())), rtol=0, atol=1e-12)
    assert torch.all(got[:, 0] == 0)
    assert got[1, 4].item() == 0.0  # previous value 0
    assert got[2, 11].item() == 0.0  # glitch guard
