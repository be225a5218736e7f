"""The fast ACE Function (Eq. 8 with the analytic Eq. 9) against autograd of the composed ops."""

import pytest
import torch

from ace_str.losses import ace_cpu, ace_fast
from ace_str.losses.ace import ACELoss, character_counts
from ace_str.losses.ace_fast import DENSE_COLUMNS_FACTOR, FastACECrossEntropy

# (classes, max label length): few classes use all columns, many use the label's columns only
PATHS = {"dense": (6, 4), "columns": (40, 3)}
# class counts for the fused kernel (a sample at a time) and the wide one (beyond 512 classes)
KERNELS = pytest.mark.parametrize("classes", [37, 600], ids=["fused", "wide"])


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
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits, *args)
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


@pytest.mark.parametrize("backend", ["analytic", "kernel"])
@pytest.mark.parametrize("path", PATHS)
def test_underflowing_label_class_is_exact(path, backend):
    classes, max_len = PATHS[path]
    logits, targets, lengths = make_batch(classes, max_len, dtype=torch.float32)
    logits[0, :, 3] = -1e4  # class 3 is in sample 0's label and has probability 0 everywhere
    fast_value, fast_grad = value_and_grad(ACELoss(backend=backend), logits, targets, lengths)
    # the kernel redoes class 3 in float64, which float32 log_softmax at 1e4 cannot match
    reference = logits.double() if backend == "kernel" else logits
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), reference, targets, lengths)
    ref_value, ref_grad = ref_value.float(), ref_grad.float()
    assert torch.isfinite(fast_value) and fast_value > 100
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.isfinite(fast_grad).all() and (fast_grad[0, :, 3] < 0).all()
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


@pytest.mark.parametrize("backend", ["analytic", "kernel"])
@pytest.mark.parametrize("path", PATHS)
def test_huge_logits_match_reference(path, backend):
    logits, targets, lengths = make_batch(*PATHS[path], dtype=torch.float32)
    logits = logits / 3 * 1e4
    fast_value, fast_grad = value_and_grad(ACELoss(backend=backend), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits, targets, lengths)
    assert torch.isfinite(fast_value) and torch.isfinite(fast_grad).all()
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


def test_blank_weight_zero_when_label_fills_every_frame():
    logits = torch.randn(1, 3, 5, dtype=torch.float64)
    logits[0, :, 0] = -1e4  # blank never predicted, and N_blank = 0
    targets, lengths = torch.tensor([[1, 2, 2]]), torch.tensor([3])
    fast_value, fast_grad = value_and_grad(ACELoss(), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits, targets, lengths)
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
    fast_value, fast_grad = value_and_grad(ACELoss(backend="analytic"), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits, targets, lengths)
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
    fast_value, fast_grad = value_and_grad(ACELoss(backend="analytic"), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(
        ACELoss(backend="composed"), logits - offset, targets, lengths
    )
    assert shifts == ([False] if offset == 0 else [False, True])
    assert torch.allclose(fast_value, ref_value, rtol=1e-5)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("classes", [6, 37, 300, 600, 2000])
def test_kernel_matches_float64_autograd(classes, masked):
    """The fused CPU kernels (float32) against autograd of the composed ops in float64."""
    logits, targets, lengths = make_batch(classes, 5, batch=4, frames=12, dtype=torch.float32)
    input_lengths = torch.tensor([12, 9, 5, 7]) if masked else None
    args = (targets, lengths, input_lengths)
    value, grad = value_and_grad(ACELoss(backend="kernel"), logits, *args)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits.double(), *args)
    assert value.dtype == grad.dtype == torch.float32
    assert torch.allclose(value.double(), ref_value, rtol=1e-6)
    assert torch.allclose(grad.double(), ref_grad, atol=1e-7)
    if masked:
        assert (grad[1, 9:] == 0).all() and (grad[2, 5:] == 0).all()


@pytest.mark.parametrize("masked", [False, True])
def test_parallel_and_serial_kernels_agree(monkeypatch, masked):
    """Big batches go through numba's thread pool, small ones stay on the calling thread."""
    kernels = ace_cpu.numba_kernels()
    logits, targets, lengths = make_batch(37, 5, batch=6, frames=12, dtype=torch.float32)
    args = (targets, lengths, torch.tensor([12, 9, 5, 7, 6, 12]) if masked else None)
    called = []

    def spy(name):
        kernel = getattr(kernels.module, name)
        return lambda *inputs: called.append(name) or kernel(*inputs)

    for name in ("ace_kernel", "ace_kernel_serial"):
        monkeypatch.setattr(kernels.module, name, spy(name))
    before = torch.get_num_threads()
    results = []
    try:
        torch.set_num_threads(2)
        for threshold in (0, logits.numel() + 1):
            monkeypatch.setattr(kernels, "parallel_min_elements", threshold)
            results.append(value_and_grad(ACELoss(backend="kernel"), logits, *args))
    finally:
        torch.set_num_threads(before)
    assert called == ["ace_kernel", "ace_kernel_serial"]
    (value, grad), (serial_value, serial_grad) = results
    assert torch.equal(value, serial_value) and torch.equal(grad, serial_grad)


def test_kernel_reads_a_2d_map_as_frames():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 37, generator=gen)
    targets, lengths = torch.tensor([[5, 5, 9], [1, 2, 0]]), torch.tensor([3, 2])
    value, grad = value_and_grad(ACELoss(backend="kernel"), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="analytic"), logits, targets, lengths)
    assert grad.shape == logits.shape
    assert torch.allclose(value, ref_value, rtol=1e-6)
    assert torch.allclose(grad, ref_grad, atol=1e-7)


@KERNELS
def test_kernel_second_backward_recomputes(classes):
    logits, targets, lengths = make_batch(classes, 5, dtype=torch.float32)
    logits.requires_grad_(True)
    loss = ACELoss(backend="kernel")(logits, targets, lengths)
    (first,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (second,) = torch.autograd.grad(loss, logits)
    assert torch.equal(first, second)


@KERNELS
def test_kernel_gradient_scales_with_the_incoming_gradient(classes):
    """The kernel writes d(mean loss)/d logits in the forward; backward scales it."""
    logits, targets, lengths = make_batch(classes, 5, dtype=torch.float32)
    logits.requires_grad_(True)
    (grad,) = torch.autograd.grad(
        -2.5 * ACELoss(backend="kernel")(logits, targets, lengths), logits
    )
    (ref,) = torch.autograd.grad(
        -2.5 * ACELoss(backend="analytic")(logits, targets, lengths), logits
    )
    assert torch.allclose(grad, ref, atol=1e-6) and grad.abs().max() > 1e-4


@KERNELS
def test_kernel_sample_without_frames_gives_no_loss_and_no_gradient(classes):
    logits, _, _ = make_batch(classes, 5, batch=2, dtype=torch.float32)
    targets, lengths = torch.tensor([[4, 2], [0, 0]]), torch.tensor([2, 0])
    logits.requires_grad_(True)
    terms = ACELoss(backend="kernel").terms(logits, targets, lengths, torch.tensor([7, 0]))
    (grad,) = torch.autograd.grad(terms.loss, logits)
    assert (grad[1] == 0).all() and grad[0].abs().sum() > 0
    alone = ACELoss(backend="kernel").terms(logits[:1], targets[:1], lengths[:1])
    assert torch.allclose(terms.loss * 2, alone.loss)  # the empty sample adds 0 to the mean


@KERNELS
@pytest.mark.parametrize("on_too_long", ["skip", "error"])
def test_kernel_kl_and_skips_match_pytorch_ops(on_too_long, classes):
    logits, targets, lengths = make_batch(classes, 5, batch=4, frames=12, dtype=torch.float32)
    input_lengths = torch.tensor([12, 3, 9, 12])  # sample 1 holds more symbols than frames
    lengths[1] = 5
    args = (logits.requires_grad_(True), targets, lengths, input_lengths)
    kernel, torch_ops = (
        ACELoss(on_too_long=on_too_long, backend="kernel"),
        ACELoss(backend="analytic"),
    )
    if on_too_long == "error":
        with pytest.raises(ValueError, match="batch index 1 has a label of 5 symbols.*only 3"):
            kernel.terms(*args)
        return
    torch_ops.on_too_long = "skip"
    got, want = kernel.terms(*args), torch_ops.terms(*args)
    assert got.skipped == want.skipped == 1
    assert torch.allclose(got.loss, want.loss, rtol=1e-6)
    assert torch.allclose(got.kl, want.kl, atol=1e-6) and not got.kl.requires_grad
    (g1,) = torch.autograd.grad(got.loss, logits)
    (g2,) = torch.autograd.grad(want.loss, logits)
    assert torch.allclose(g1, g2, atol=1e-7) and (g1[1] == 0).all()


@KERNELS
def test_kernel_all_samples_skipped_gives_zero_loss_and_gradient(classes):
    logits, targets, lengths = make_batch(classes, 5, batch=2, frames=3, dtype=torch.float32)
    lengths[:] = 5
    logits.requires_grad_(True)
    terms = ACELoss(on_too_long="skip", backend="kernel").terms(logits, targets, lengths)
    (grad,) = torch.autograd.grad(terms.loss, logits)
    assert terms.skipped == 2 and terms.loss == 0 and (grad == 0).all()


@KERNELS
def test_kernel_names_a_target_outside_the_classes(classes):
    logits, targets, lengths = make_batch(classes, 5, dtype=torch.float32)
    targets[1, 0] = classes
    lengths[1] = max(int(lengths[1]), 1)
    with pytest.raises(ValueError, match="batch index 1"):
        ACELoss(backend="kernel")(logits, targets, lengths)


def test_kernel_refuses_what_it_cannot_take():
    logits, targets, lengths = make_batch(37, 5)  # float64
    with pytest.raises(ValueError, match="float32 CPU logits"):
        ACELoss(backend="kernel")(logits, targets, lengths)
    many = torch.zeros(1, 4, ace_cpu.KERNEL_MAX_CLASSES + 1)
    auto = ACELoss()
    assert auto.backend_for(many[..., :37])[0] == "kernel"
    assert auto.backend_for(many)[0] == "kernel"  # the wide kernel beyond 512
    assert auto.backend_for(many.double())[0] == "analytic"
    value = ACELoss(backend="analytic")(many, torch.tensor([[1]]), torch.tensor([1]))
    assert torch.allclose(
        value, ACELoss(backend="kernel")(many, torch.tensor([[1]]), torch.tensor([1]))
    )


def test_kernel_threads_follow_torch():
    numba = pytest.importorskip("numba")
    logits, targets, lengths = make_batch(37, 5, dtype=torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ACELoss(backend="kernel")(logits, targets, lengths)
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_wide_kernel_underflowing_class_is_exact():
    """Beyond 512 classes: a label class at -1e4 in every frame and a repeated class, against
    float64 autograd."""
    logits, targets, lengths = make_batch(600, 5, batch=3, frames=9, dtype=torch.float32)
    lengths[:] = torch.tensor([5, 4, 3])
    logits[1, :, targets[1, 0]] = -1e4
    value, grad = value_and_grad(ACELoss(backend="kernel"), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(
        ACELoss(backend="composed"), logits.double(), targets, lengths
    )
    assert torch.isfinite(value) and value > 100
    assert torch.allclose(value.double(), ref_value, rtol=1e-6)
    assert torch.isfinite(grad).all() and (grad[1, :, targets[1, 0]] < 0).all()
    assert torch.allclose(grad.double(), ref_grad, atol=1e-7)


def test_wide_kernel_rows_far_above_their_first_logit_are_exact():
    """The wide kernel shifts each frame by its first logit; a logit 200 above it would overflow
    that sum, so the frame is redone shifted by its maximum."""
    logits, targets, lengths = make_batch(600, 4, batch=2, frames=6, dtype=torch.float32)
    logits[0, 2, 7] = logits[0, 2, 0] + 200.0
    logits[1, :, 0] = -150.0  # every frame's first logit far below the rest
    value, grad = value_and_grad(ACELoss(backend="kernel"), logits, targets, lengths)
    ref_value, ref_grad = value_and_grad(
        ACELoss(backend="composed"), logits.double(), targets, lengths
    )
    assert torch.allclose(value.double(), ref_value, rtol=1e-6)
    assert torch.allclose(grad.double(), ref_grad, atol=1e-7)
