"""The fast ACE Function (Eq. 8 with the analytic Eq. 9) against autograd of the composed ops."""

import pytest
import torch

from ace_str.losses import ace_fast
from ace_str.losses.ace import ACELoss, character_counts
from ace_str.losses.ace_fast import DENSE_COLUMNS_FACTOR, FastACECrossEntropy

# (classes, max label length): few classes use all columns, many use the label's columns only
PATHS = {"dense": (6, 4), "columns": (40, 3)}


def make_batch(classes, max_len, batch=3, frames=7, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=gen)
    targets = torch.randint(1, classes, (batch, max_len), generator=gen)
    targets[0, :2] = 3  # a repeated symbol: N_k = 2
    logits = torch.randn(batch, frames, classes, generator=gen, dtype=dtype) * 3
    return logits, targets, lengths


def value_and_grad(loss, logits, *args):
    logits = logits.clone().requires_grad_(True)
    value = loss(logits, *args)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def test_paths_cover_both_branches():
    for name, (classes, max_len) in PATHS.items():
        dense = classes <= DENSE_COLUMNS_FACTOR * (max_len + 1)
        assert dense == (name == "dense")


@pytest.mark.parametrize("path", PATHS)
def test_gradcheck_function(path):
    logits, targets, lengths = make_batch(*PATHS[path])
    frames = torch.full((3,), logits.shape[1])
    counts = character_counts(targets, lengths, logits.shape[-1], frames)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: FastACECrossEntropy.apply(x, counts, targets, lengths, frames, None), (logits,)
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("masked", [False, True])
def test_matches_autograd_of_composed_ops(path, masked):
    logits, targets, lengths = make_batch(*PATHS[path])
    input_lengths = torch.tensor([7, 5, 4]) if masked else None
    args = (targets, lengths, input_lengths)
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, *args)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits, *args)
    assert torch.allclose(fast_value, ref_value, rtol=1e-6)  # counts are float32 in the reference
    assert torch.allclose(fast_grad, ref_grad, atol=1e-9)
    if masked:
        assert (fast_grad[1, 5:] == 0).all() and (fast_grad[2, 4:] == 0).all()


@pytest.mark.parametrize("path", PATHS)
def test_second_backward_recomputes(path):
    logits, targets, lengths = make_batch(*PATHS[path])
    logits.requires_grad_(True)
    loss = ACELoss()(logits, targets, lengths)
    (first,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (second,) = torch.autograd.grad(loss, logits)
    assert torch.equal(first, second)


@pytest.mark.parametrize("path", PATHS)
def test_underflowing_label_class_is_exact(path):
    classes, max_len = PATHS[path]
    logits, targets, lengths = make_batch(classes, max_len, dtype=torch.float32)
    logits[0, :, 3] = -1e4  # class 3 is in sample 0's label and has probability 0 everywhere
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits, targets, lengths)
    assert torch.isfinite(fast_value) and fast_value > 100
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.isfinite(fast_grad).all() and (fast_grad[0, :, 3] < 0).all()
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_huge_logits_match_reference(path):
    logits, targets, lengths = make_batch(*PATHS[path], dtype=torch.float32)
    logits = logits / 3 * 1e4
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits, targets, lengths)
    assert torch.isfinite(fast_value) and torch.isfinite(fast_grad).all()
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


def test_blank_weight_zero_when_label_fills_every_frame():
    logits = torch.randn(1, 3, 5, dtype=torch.float64)
    logits[0, :, 0] = -1e4  # blank never predicted, and N_blank = 0
    targets, lengths = torch.tensor([[1, 2, 2]]), torch.tensor([3])
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits, targets, lengths)
    assert torch.allclose(fast_value, ref_value) and torch.allclose(fast_grad, ref_grad)


def test_frames_far_below_the_sample_max_take_the_exact_path(monkeypatch):
    """A frame 200 nats below the sample's largest logit underflows even when shifted."""
    logits, targets, lengths = make_batch(*PATHS["dense"], dtype=torch.float32)
    logits[1, 2] -= 200.0
    taken = []
    original = ace_fast._label_columns_forward
    monkeypatch.setattr(
        ace_fast, "_label_columns_forward", lambda *a: taken.append(1) or original(*a)
    )
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits, targets, lengths)
    assert taken  # the exponential path was refused, shifted or not
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 120.0])
def test_few_classes_use_the_exponential_path(monkeypatch, offset):
    """Plain exp(a) at offset 0; at +120 exp(a) overflows and the per-sample shift takes over."""
    logits, targets, lengths = make_batch(*PATHS["dense"], dtype=torch.float32)
    logits += offset
    shifts = []
    original = ace_fast._exponential
    monkeypatch.setattr(
        ace_fast, "_exponential", lambda x, shifted: shifts.append(shifted) or original(x, shifted)
    )

    def refuse(*args):
        raise AssertionError("label-column path taken for a well-scaled few-class batch")

    monkeypatch.setattr(ace_fast, "_label_columns_forward", refuse)
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(fast=False), logits - offset, targets, lengths)
    assert shifts == ([False] if offset == 0 else [False, True])
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)
