"""ACE against the paper's four formulas, Eq. 9 and autograd, in float64."""

import pytest
import torch

from ace_str.losses.ace import ACELoss, character_counts

torch.manual_seed(0)


def four_formulas(logits: torch.Tensor, labels: list[list[int]]) -> torch.Tensor:
    """Sec. 3.4 literally, in float64, one sample at a time."""
    losses = []
    for row, label in zip(logits.double(), labels, strict=True):
        frames, classes = row.shape
        y = row.softmax(-1)
        counts = torch.zeros(classes, dtype=torch.float64)
        for k in label:
            counts[k] += 1
        counts[0] = frames - len(label)
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
    counts = character_counts(targets, lengths, classes, torch.tensor([frames]))[0].double()
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
    logits, targets, lengths, labels = make_batch()
    y = logits.softmax(-1).sum(1)
    counts = character_counts(targets, lengths, logits.shape[-1], torch.full((4,), 12))
    expected = (0.5 * (counts.double() - y).pow(2).sum(1)).mean()
    assert torch.allclose(ACELoss(mode="regression")(logits, targets, lengths).double(), expected)


def test_huge_logits_stay_finite():
    logits, targets, lengths, _ = make_batch()
    logits = (torch.randn(*logits.shape) * 1e4).float().requires_grad_(True)
    loss = ACELoss()(logits, targets, lengths)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # the reference code's +1e-10 saturates instead: finite but clipped at -ln(1e-10)-ish terms
    assert torch.isfinite(ACELoss(mode="reference")(logits.detach(), targets, lengths))


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


def test_2d_map_is_flattened_eq10():
    logits2d = torch.randn(2, 3, 4, 6)
    targets, lengths = torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    flat = ACELoss()(logits2d.flatten(1, 2), targets, lengths)
    assert torch.allclose(ACELoss()(logits2d, targets, lengths), flat)
    # order of cells does not matter for ACE: column-major flattening gives the same loss
    col_major = logits2d.transpose(1, 2).flatten(1, 2)
    assert torch.allclose(ACELoss()(col_major, targets, lengths), flat)


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
    logits, targets, lengths, _ = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ACELoss()(logits.bfloat16(), targets, lengths)
    assert loss.dtype == torch.float32
