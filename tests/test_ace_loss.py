"""ACE against the paper's four formulas, Eq. 9 and autograd, in float64."""

import math

import pytest
import torch

from ace_str.losses.ace import ACELoss

torch.manual_seed(0)


def counts_by_hand(label: list[int], classes: int, frames: int) -> torch.Tensor:
    """N_k of Sec. 3.1 by counting: how often class k occurs, and N_blank = T - |S|."""
    counts = torch.zeros(classes, dtype=torch.float64)
    for k in label:
        counts[k] += 1
    counts[0] = frames - len(label)
    return counts


def four_formulas(logits: torch.Tensor, labels: list[list[int]]) -> torch.Tensor:
    """Sec. 3.4 literally, in float64, one sample at a time."""
    losses = []
    for row, label in zip(logits.double(), labels, strict=True):
        frames, classes = row.shape
        y = row.softmax(-1)
        counts = counts_by_hand(label, classes, frames)
        y_k = y.sum(0)  # y_k = sum_t y^t_k
        y_bar = y_k / frames  # ȳ_k = y_k / T
        n_bar = counts / frames  # N̄_k = N_k / T
        losses.append(-(n_bar * y_bar.log()).sum())  # L = -sum N̄_k ln ȳ_k
    return torch.stack(losses).mean()


def make_batch(batch=4, frames=12, classes=7, max_len=6):
    labels = [
        torch.randint(1, classes, (int(torch.randint(1, max_len + 1, ())),)).tolist()
        for _ in range(batch)
    ]
    targets = torch.zeros(batch, max_len, dtype=torch.long)
    for i, lab in enumerate(labels):
        targets[i, : len(lab)] = torch.tensor(lab)
    lengths = torch.tensor([len(lab) for lab in labels])
    logits = torch.randn(batch, frames, classes, dtype=torch.float64) * 3
    return logits, targets, lengths, labels


def test_value_equals_four_formulas():
    logits, targets, lengths, labels = make_batch()
    got = ACELoss()(logits, targets, lengths)
    assert torch.allclose(got.double(), four_formulas(logits, labels), rtol=1e-5)


def test_reference_mode_matches_formulas_up_to_epsilon():
    logits, targets, lengths, labels = make_batch()
    ref = ACELoss(mode="reference")(logits, targets, lengths)
    assert torch.allclose(ref.double(), four_formulas(logits, labels), atol=1e-6)


def test_gradient_equals_eq9():
    logits, targets, lengths, labels = make_batch(batch=1, frames=9, classes=5)
    logits.requires_grad_(True)
    ACELoss()(logits, targets, lengths).backward()
    y = logits.detach().softmax(-1)[0]
    frames, classes = y.shape
    counts = counts_by_hand(labels[0], classes, frames)
    n_bar, y_bar = counts / frames, y.sum(0) / frames
    # Eq. 9: dL/da^t_k = -(1/T) sum_k' N̄_k' (y^t_k' / ȳ_k') (δ_kk' - y^t_k)
    expected = torch.zeros_like(y)
    for t in range(frames):
        for k in range(classes):
            expected[t, k] = (
                -sum(
                    n_bar[kp] * y[t, kp] / y_bar[kp] * (float(k == kp) - y[t, k])
                    for kp in range(classes)
                )
                / frames
            )
    assert torch.allclose(logits.grad[0], expected, atol=1e-10)


@pytest.mark.parametrize("mode", ["cross_entropy", "regression"])
def test_gradcheck(mode):
    logits, targets, lengths, _ = make_batch(batch=2, frames=6, classes=4, max_len=3)
    logits.requires_grad_(True)
    loss = ACELoss(mode=mode)
    assert torch.autograd.gradcheck(lambda x: loss(x, targets, lengths), (logits,))


def test_regression_is_eq4():
    """Eq. 4, (1/2) sum_k (N_k - y_k)^2 with y_k = sum_t y^t_k, against counts made by hand (not
    the implementation's own character_counts, whose mistakes it would share)."""
    logits, targets, lengths, labels = make_batch()
    frames, classes = logits.shape[1:]
    per_sample = [
        0.5 * (counts_by_hand(label, classes, frames) - row.softmax(-1).sum(0)).pow(2).sum()
        for row, label in zip(logits, labels, strict=True)
    ]
    expected = torch.stack(per_sample).mean()
    assert torch.allclose(ACELoss(mode="regression")(logits, targets, lengths).double(), expected)
    # worked by hand: 2 frames of equal logits give y_k = 2/3 for each of 3 classes; the label
    # "a" has N = (blank 1, a 1, b 0): (1/2) ((1/3)^2 + (1/3)^2 + (2/3)^2) = 1/3
    hand = ACELoss(mode="regression")(torch.zeros(1, 2, 3), torch.tensor([[1]]), torch.tensor([1]))
    assert hand.item() == pytest.approx(1 / 3, rel=1e-6)


def log_space_formulas(logits: torch.Tensor, labels: list[list[int]]) -> torch.Tensor:
    """Eq. 8 in float64 with ln ȳ_k = ln sum_t exp(log y^t_k) - ln T written out, for logits so
    large that y^t_k underflows to 0 even in float64 (where four_formulas would take ln 0)."""
    losses = []
    for row, label in zip(logits.double(), labels, strict=True):
        frames, classes = row.shape
        log_y = row - row.logsumexp(-1, keepdim=True)  # log softmax
        peak = log_y.max(0).values
        log_y_bar = peak + (log_y - peak).exp().sum(0).log() - math.log(frames)
        n_bar = counts_by_hand(label, classes, frames) / frames
        terms = [n_bar[k] * log_y_bar[k] for k in range(classes) if n_bar[k] > 0]
        losses.append(-torch.stack(terms).sum())
    return torch.stack(losses).mean()


def test_huge_logits_give_the_hand_worked_loss_and_gradient():
    """Logits of 1e4 put exp(-1e4) = 0 (in float32 and float64) on every class but the winner:
    an implementation that took ln of the probabilities would give inf or nan, one that clamped
    them a wrong finite number. Worked by hand: 2 frames both certain of 'a' (class 1), label
    "b" (class 2), so N = (blank 1, a 0, b 1) and ln ȳ_blank = ln ȳ_b = -1e4:
    L = -(1/2)(-1e4) - (1/2)(-1e4) = 1e4. Both frames are alike, so y^t_k' / ȳ_k' = 1 and
    Eq. 9 gives dL/da^t_k = -(1/T)(N̄_k - y^t_k) = -(1/2)((1/2, 0, 1/2) - (0, 1, 0))."""
    logits = torch.full((1, 2, 3), -1e4)
    logits[..., 1] = 0.0
    logits.requires_grad_(True)
    loss = ACELoss()(logits, torch.tensor([[2]]), torch.tensor([1]))
    loss.backward()
    assert loss.item() == pytest.approx(1e4, rel=1e-6)
    expected = torch.tensor([-0.25, 0.5, -0.25]).expand(2, 3)
    assert torch.allclose(logits.grad[0], expected, atol=1e-6)
    # the authors' +1e-10 saturates instead: ȳ_blank = ȳ_b = 1e-10, L = -ln 1e-10 = 10 ln 10
    reference = ACELoss(mode="reference")(logits.detach(), torch.tensor([[2]]), torch.tensor([1]))
    assert reference.item() == pytest.approx(10 * math.log(10), rel=1e-5)

    random_logits, targets, lengths, labels = make_batch()
    random_logits = random_logits * 3e3  # most classes underflow in most frames
    got = ACELoss()(random_logits.float(), targets, lengths)
    want = log_space_formulas(random_logits.float(), labels)
    assert torch.isfinite(want) and want > 100  # far beyond anything an epsilon would allow
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_underflowing_class_in_label_gives_finite_gradient():
    logits = torch.zeros(1, 5, 3)
    logits[..., 2] = -1e4  # class 2 has probability exp(-1e4) = 0 in float32 everywhere
    logits.requires_grad_(True)
    loss = ACELoss()(logits, torch.tensor([[2]]), torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and loss > 1e3
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[0, :, 2] < 0).all()  # pushes class 2 up


def test_invariant_to_character_order():
    logits = torch.randn(2, 10, 6)
    targets = torch.tensor([[1, 2, 3, 3, 5], [3, 5, 1, 3, 2]])
    lengths = torch.tensor([5, 5])
    per = [ACELoss()(logits[:1], targets[i : i + 1], lengths[:1]) for i in range(2)]
    assert torch.allclose(per[0], per[1])


def test_2d_map_is_eq10():
    """Eq. 10 written out over the map, not through the implementation's own flatten: for an
    H x W prediction, ȳ_k = (1/HW) sum_h sum_w y^hw_k, N̄_k = N_k / HW, N_blank = HW - |S|,
    L = -sum_k N̄_k ln ȳ_k (a flatten over the wrong axes, e.g. batch and height, fails)."""
    logits2d = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    targets, lengths = torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    labels = [[1, 2], [3]]
    losses = []
    for i, label in enumerate(labels):
        _, height, width, classes = logits2d.shape
        cells = height * width
        y_bar = torch.zeros(classes, dtype=torch.float64)
        for h in range(height):
            for w in range(width):
                y_bar += logits2d[i, h, w].softmax(-1) / cells
        n_bar = counts_by_hand(label, classes, cells) / cells
        losses.append(-(n_bar * y_bar.log()).sum())
    expected = torch.stack(losses).mean()
    got = ACELoss()(logits2d, targets, lengths)
    assert torch.allclose(got.double(), expected, rtol=1e-6)
    # the order of cells does not matter for ACE: a column-major map gives the same loss
    column_major = logits2d.transpose(1, 2).contiguous()
    assert torch.allclose(ACELoss()(column_major, targets, lengths).double(), expected, rtol=1e-6)


def test_label_longer_than_frames_is_named_error_or_skip():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 3, 4], [1, 0, 0, 0]])
    lengths = torch.tensor([4, 1])
    with pytest.raises(ValueError, match="'word7'.*4 symbols.*3 frames"):
        ACELoss().terms(logits, targets, lengths, names=["word7", "ok"])
    terms = ACELoss(on_too_long="skip").terms(logits, targets, lengths)
    assert terms.skipped == 1
    assert torch.allclose(terms.loss, ACELoss()(logits[1:], targets[1:], lengths[1:]))


def test_input_lengths_leave_padded_frames_out():
    logits = torch.randn(1, 8, 5)
    targets, lengths = torch.tensor([[1, 2]]), torch.tensor([2])
    short = ACELoss()(logits[:, :5], targets, lengths)
    padded = logits.clone()
    padded[:, 5:] = 50.0  # garbage in padded frames must not matter
    assert torch.allclose(ACELoss()(padded, targets, lengths, torch.tensor([5])), short)


def test_kl_is_zero_at_perfect_fit():
    # frames predict exactly: 'a','b', blank -> counts match ȳ exactly
    logits = torch.full((1, 3, 3), -1e4)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 0] = 0.0
    terms = ACELoss().terms(logits, torch.tensor([[1, 2]]), torch.tensor([2]))
    assert abs(float(terms.kl)) < 1e-5
    bad = ACELoss().terms(torch.zeros(1, 4, 3), torch.tensor([[1, 2]]), torch.tensor([2]))
    assert float(bad.kl) > 0.01


def test_float32_under_autocast():
    """Under bf16 autocast the loss is computed in float32 from the bf16 logits: its value is
    the formulas' on those logits (bf16 keeps under three significant digits, far off rel 1e-5)."""
    logits, targets, lengths, labels = make_batch()
    half = logits.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ACELoss()(half, targets, lengths)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(four_formulas(half.double(), labels).item(), rel=1e-5)


# ------------------------------------------------------------------ backends
@pytest.mark.parametrize("backend", ["auto", "kernel", "analytic", "composed"])
@pytest.mark.parametrize("shape", [(3, 8, 7), (3, 2, 4, 7)], ids=["1d", "2d"])
def test_every_backend_gives_the_composed_value_and_gradient(backend, shape):
    """Each implementation of Eq. 8 (Eq. 10 on a map) against autograd of the composed ops in
    float64, on float32 logits, the dtype every backend takes; 1D with padded frames."""
    if backend == "kernel":
        pytest.importorskip("numba")
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(*shape, generator=gen) * 3
    targets, lengths = (
        torch.tensor([[1, 2, 2, 5], [3, 0, 0, 0], [6, 4, 1, 0]]),
        torch.tensor([4, 1, 3]),
    )
    frames = torch.tensor([8, 6, 5]) if len(shape) == 3 else None

    def value_and_grad(loss, x):
        x = x.clone().requires_grad_(True)
        value = loss(x, targets, lengths, frames)
        return value.detach(), torch.autograd.grad(value, x)[0]

    value, grad = value_and_grad(ACELoss(backend=backend), logits)
    ref_value, ref_grad = value_and_grad(ACELoss(backend="composed"), logits.double())
    assert value.dtype == grad.dtype == torch.float32
    assert torch.allclose(value.double(), ref_value, rtol=1e-5)
    assert torch.allclose(grad.double(), ref_grad, atol=1e-6)


def test_auto_picks_kernel_for_float32_cpu_logits_else_analytic(monkeypatch):
    """The choice made before ``backend`` existed: the numba kernels for float32 (or half, cast
    to it) CPU logits when numba imports, the analytic Function elsewhere; the regression and
    reference forms have composed ops only."""
    from ace_str.losses import ace as ace_module

    auto = ACELoss()
    numba = ace_module.numba_kernels() is not None
    on_cpu = "kernel" if numba else "analytic"
    assert auto.backend_for(torch.zeros(1, 2, 3))[0] == on_cpu
    assert auto.backend_for(torch.zeros(1, 2, 3, dtype=torch.bfloat16))[0] == on_cpu
    assert auto.backend_for(torch.zeros(1, 2, 600))[0] == on_cpu  # the wide kernel
    assert auto.backend_for(torch.zeros(1, 2, 3, dtype=torch.float64))[0] == "analytic"
    assert auto.backend_for(torch.zeros(1, 2, 3, device="meta"))[0] == "analytic"  # as CUDA
    for mode in ("regression", "reference"):
        assert ACELoss(mode=mode).backend_for(torch.zeros(1, 2, 3))[0] == "composed"
    monkeypatch.setattr(ace_module, "numba_kernels", lambda: None)
    backend, why = auto.backend_for(torch.zeros(1, 2, 3))
    assert backend == "analytic" and "numba" in why


def test_explicit_backend_that_cannot_run_raises(monkeypatch):
    from ace_str.losses import ace as ace_module

    with pytest.raises(ValueError, match="backend must be one of"):
        ACELoss(backend="fast")
    with pytest.raises(ValueError, match="backend=kernel.*mode=regression"):
        ACELoss(mode="regression", backend="kernel")
    with pytest.raises(ValueError, match="backend=analytic.*mode=reference"):
        ACELoss(mode="reference", backend="analytic")
    assert ACELoss(mode="regression", backend="composed").backend_for(torch.zeros(1, 2, 3))
    with monkeypatch.context() as patch:
        patch.setattr(ace_module, "numba_kernels", lambda: None)
        with pytest.raises(ValueError, match="backend=kernel needs numba"):
            ACELoss(backend="kernel")
    if ace_module.numba_kernels() is None:
        return
    kernel = ACELoss(backend="kernel")
    logits, targets, lengths, _ = make_batch()  # float64
    with pytest.raises(ValueError, match="backend=kernel needs float32 CPU logits"):
        kernel(logits, targets, lengths)
    with pytest.raises(ValueError, match="backend=kernel needs float32 CPU logits.*meta"):
        kernel.backend_for(torch.zeros(1, 2, 3, device="meta"))  # as on CUDA


def test_backend_is_logged_once_with_the_reason(caplog):
    logits, targets, lengths, _ = make_batch()
    loss = ACELoss()
    with caplog.at_level("INFO", logger="ace_str.losses.ace"):
        loss(logits, targets, lengths)
        loss(logits, targets, lengths)
    said = [r.getMessage() for r in caplog.records if "runs on backend" in r.getMessage()]
    assert said == [
        "ACE (mode=cross_entropy) runs on backend=analytic "
        "(auto: torch.float64 logits on cpu, not float32 CPU)"
    ]


def test_skipped_samples_are_counted_and_said_once(caplog):
    logits = torch.randn(3, 3, 5)
    targets = torch.tensor([[1, 2, 3, 4], [1, 0, 0, 0], [1, 1, 1, 1]])
    lengths = torch.tensor([4, 1, 4])
    loss = ACELoss(on_too_long="skip", backend="composed")
    with caplog.at_level("WARNING", logger="ace_str.losses.ace"):
        assert loss.terms(logits, targets, lengths).skipped == 2
        assert loss.terms(logits, targets, lengths).skipped == 2
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "left out 2 sample(s)" in said[0] and "ace_skipped" in said[0]
