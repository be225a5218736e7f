"""CTC, attention and CTC+ACE heads, CTC beam search, label-order shuffling, and that training,
validation and evaluate.py run with each head."""

import math

import pytest
import torch
import torch.nn.functional as F

from ace_str.build.config import compose_config
from ace_str.build.data import build_train_dataset, build_val_datasets
from ace_str.build.models import build_charset, load_model
from ace_str.data.shuffle import ShuffledLabels
from ace_str.data.tokenizer import EOS, AttentionTokenizer
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.run import evaluate_checkpoint
from ace_str.losses.ace import ACELoss
from ace_str.models.decoding import ctc_greedy_decode, ctc_prefix_beam_search
from ace_str.models.heads.ace import ACEHead
from ace_str.models.heads.attention import AttentionHead
from ace_str.models.heads.ctc import CTCHead
from ace_str.models.heads.ctc_ace import CTCACEHead
from tests.test_evaluate import write_folder


def one_hot_logits(frames: list[int], classes: int = 6) -> torch.Tensor:
    logits = torch.full((1, len(frames), classes), -10.0)
    for t, k in enumerate(frames):
        logits[0, t, k] = 10.0
    return logits


def batch_targets(labels: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(x) for x in labels])
    targets = torch.zeros(len(labels), int(lengths.max()), dtype=torch.long)
    for i, x in enumerate(labels):
        targets[i, : len(x)] = torch.tensor(x)
    return targets, lengths


# ------------------------------------------------------------------ CTC
@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_ctc_decoding_edge_cases(decoder):
    head = CTCHead(4, 6, decoder=decoder, beam_width=3)
    assert head.decode(one_hot_logits([3, 3, 0, 3, 2, 2]))[0] == [[3, 3, 2]]
    assert head.decode(one_hot_logits([3, 3, 3]))[0] == [[3]]
    sequences, confidence = head.decode(one_hot_logits([0, 0, 0]))
    assert sequences == [[]] and float(confidence[0]) > 0.99


def test_beam_width_one_follows_the_best_path_on_confident_frames():
    # random paths with blanks and repeats; one clear winner per frame. (Where frames are
    # uncertain, width 1 may keep a prefix the best path does not collapse to: see below.)
    generator = torch.Generator().manual_seed(0)
    path = torch.randint(0, 4, (16, 20), generator=generator)
    logits = torch.randn(16, 20, 4, generator=generator)
    logits.scatter_(2, path.unsqueeze(-1), 12.0)
    greedy, _ = ctc_greedy_decode(logits)
    beam, confidence = ctc_prefix_beam_search(logits, beam_width=1)
    assert beam == greedy
    assert ((confidence > 0) & (confidence <= 1)).all()


def test_beam_search_finds_the_label_greedy_misses():
    # two frames of blank 0.6 / 'a' 0.4: best path "" (0.36) but "a" has 0.24 + 0.24 + 0.16
    logits = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()
    assert ctc_greedy_decode(logits)[0] == [[]]
    assert ctc_prefix_beam_search(logits, 1)[0] == [[]]
    sequences, confidence = ctc_prefix_beam_search(logits, 2)
    assert sequences == [[1]]
    assert float(confidence[0]) == pytest.approx(0.64, abs=1e-6)


def test_beam_search_sums_alignments_of_a_repeat():
    # T = 3, classes {blank, a}: "aa" has the one alignment a-a; "a" every path but that and ---
    sure_gap = torch.tensor([[[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]]])
    sequences, confidence = ctc_prefix_beam_search(sure_gap.log(), 4)
    assert sequences == [[1, 1]]
    assert float(confidence[0]) == pytest.approx(0.8 * 0.7 * 0.9, abs=1e-6)
    weak_gap = torch.tensor([[[0.2, 0.8], [0.3, 0.7], [0.1, 0.9]]])
    sequences, confidence = ctc_prefix_beam_search(weak_gap.log(), 4)
    assert sequences == [[1]]
    assert float(confidence[0]) == pytest.approx(1 - 0.8 * 0.3 * 0.9 - 0.2 * 0.3 * 0.1, abs=1e-6)


def test_ctc_loss_equals_torch():
    torch.manual_seed(1)
    logits = torch.randn(3, 12, 6)
    targets, lengths = batch_targets([[1, 2, 2], [5], [3, 4, 1, 2, 5]])
    reference_args = (
        logits.log_softmax(-1).transpose(0, 1),
        targets,
        torch.full((3,), 12),
        lengths,
    )
    ours = CTCHead(4, 6).loss(logits, targets, lengths)["loss"]
    assert float(ours) == pytest.approx(float(F.ctc_loss(*reference_args)), rel=1e-5)
    per_sample = CTCHead(4, 6, normalize_by_length=False).loss(logits, targets, lengths)["loss"]
    reference = F.ctc_loss(*reference_args, reduction="sum") / 3
    assert float(per_sample) == pytest.approx(float(reference), rel=1e-5)


def test_ctc_loss_is_float32_and_finite_under_autocast():
    logits = torch.randn(2, 5, 6)
    targets, lengths = batch_targets([[1, 2], [1, 1, 1, 1, 1]])  # the second is impossible
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = CTCHead(4, 6).loss(logits.bfloat16(), targets, lengths)["loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_ctc_ace_loss_is_ctc_plus_weighted_ace():
    torch.manual_seed(2)
    logits = torch.randn(2, 10, 6)
    targets, lengths = batch_targets([[1, 2, 3], [4, 4]])
    out = CTCACEHead(4, 6, ace_weight=0.3).loss(logits, targets, lengths)
    ctc = CTCHead(4, 6).loss(logits, targets, lengths)["loss"]
    ace = ACELoss()(logits, targets, lengths)
    assert float(out["ctc"]) == pytest.approx(float(ctc), rel=1e-6)
    assert float(out["ace"]) == pytest.approx(float(ace), rel=1e-6)
    assert float(out["loss"]) == pytest.approx(float(ctc + 0.3 * ace), rel=1e-6)


# ------------------------------------------------------------------ attention
def test_tokenizer_keeps_charset_indices():
    tokenizer = AttentionTokenizer(5)
    targets, lengths = batch_targets([[1, 2, 3], [4]])
    assert tokenizer.inputs(targets).tolist() == [[6, 1, 2, 3], [6, 4, 0, 0]]
    assert tokenizer.outputs(targets, lengths).tolist() == [[1, 2, 3, 0], [4, 0, -100, -100]]
    assert tokenizer.strip([2, 5, EOS, 3]) == [2, 5]
    assert tokenizer.strip([2, 5, 3], max_length=2) == [2, 5]


def forced_head(winner: int, max_length: int = 4, num_classes: int = 6) -> AttentionHead:
    """A head whose every step predicts ``winner``, whatever it attends to."""
    head = AttentionHead(8, num_classes, hidden_size=8, max_length=max_length).eval()
    with torch.no_grad():
        head.generator.weight.zero_()
        head.generator.bias.fill_(-5.0)
        head.generator.bias[winner] = 5.0
    return head


def test_attention_greedy_stops_at_the_end_token():
    head = forced_head(EOS)
    logits = head(torch.randn(2, 7, 8))
    assert logits.shape == (2, 1, 6)  # every sample ended at the first step
    sequences, confidence = head.decode(logits)
    assert sequences == [[], []] and (confidence > 0.99).all()


def test_attention_greedy_respects_max_length():
    head = forced_head(3, max_length=4)
    logits = head(torch.randn(2, 7, 8))
    assert logits.shape == (2, 5, 6)  # max_length symbols, then one step for [EOS]
    assert head.decode(logits)[0] == [[3, 3, 3, 3], [3, 3, 3, 3]]


def test_attention_decode_cuts_at_end_token_with_product_confidence():
    head = AttentionHead(8, 6, hidden_size=8, max_length=10)
    logits = torch.log(torch.tensor([[[0.1, 0.1, 0.5, 0.1, 0.1, 0.1]]]))
    steps = torch.cat([logits.roll(k, dims=-1) for k in (0, 3, -2, 1)], dim=1)  # 2, 5, 0, 3
    sequences, confidence = head.decode(steps)
    assert sequences == [[2, 5]]
    assert float(confidence[0]) == pytest.approx(0.5**3, rel=1e-5)  # 2, 5 and [EOS]


def test_attention_teacher_forcing_shapes_and_padding_is_ignored():
    torch.manual_seed(3)
    head = AttentionHead(8, 6, hidden_size=8, max_length=3)  # teacher forcing ignores max_length
    targets, lengths = batch_targets([[1, 2, 3, 4, 5], [2]])
    with torch.no_grad():
        logits = head(torch.randn(2, 7, 8), targets)
    assert logits.shape == (2, 6, 6)
    loss = head.loss(logits, targets, lengths)["loss"]
    scrambled = logits.clone()
    scrambled[1, 2:] = 100 * torch.randn(4, 6)  # after sample 1's [EOS] step: padding
    assert float(head.loss(scrambled, targets, lengths)["loss"]) == pytest.approx(float(loss))
    steps = [(0, t, c) for t, c in enumerate([1, 2, 3, 4, 5, 0])] + [(1, 0, 2), (1, 1, 0)]
    manual = torch.stack([-logits[b, t].log_softmax(-1)[c] for b, t, c in steps]).mean()
    assert float(loss) == pytest.approx(float(manual), rel=1e-5)
    with pytest.raises(ValueError, match="teacher-forced"):
        head.loss(logits[:, :3], targets, lengths)


def test_attention_runs_under_autocast_with_float32_loss():
    head = AttentionHead(8, 6, hidden_size=8, embedding_dim=4)
    targets, lengths = batch_targets([[1, 2], [3]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = torch.randn(2, 5, 8).bfloat16()
        loss = head.loss(head(features, targets), targets, lengths)["loss"]
        head.eval()
        sequences, _ = head.decode(head(features))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(len(s) <= head.max_length for s in sequences)


# ------------------------------------------------------------------ label shuffling
LABELS = ["abcdefgh", "hello", "world", "abcd", "x", None, "shuffle", "counting"] * 8


class Labels(torch.utils.data.Dataset):
    def __len__(self):
        return len(LABELS)

    def __getitem__(self, index):
        return None if LABELS[index] is None else (f"image{index}", LABELS[index])


def test_shuffled_labels_are_permutations_and_deterministic():
    shuffled = ShuffledLabels(Labels(), ratio=1.0, seed=7)
    again = ShuffledLabels(Labels(), ratio=1.0, seed=7)
    other_seed = ShuffledLabels(Labels(), ratio=1.0, seed=8)
    changed = 0
    for i, label in enumerate(LABELS):
        if label is None:
            assert shuffled[i] is None
            continue
        image, text = shuffled[i]
        assert image == f"image{i}" and sorted(text) == sorted(label)
        assert again[i] == shuffled[i]
        changed += text != label
    assert changed > len(LABELS) // 2
    assert [other_seed[i] for i in range(len(LABELS))] != [shuffled[i] for i in range(len(LABELS))]


def test_shuffle_ratio_zero_is_unchanged_and_ratio_picks_a_share():
    plain = Labels()
    unchanged = ShuffledLabels(plain, ratio=0.0, seed=7)
    assert [unchanged[i] for i in range(len(plain))] == [plain[i] for i in range(len(plain))]
    half = ShuffledLabels(plain, ratio=0.5, seed=7)
    share = sum(half.is_shuffled(i) for i in range(2000)) / 2000
    assert 0.45 < share < 0.55
    untouched = [i for i in range(len(plain)) if not half.is_shuffled(i)]
    assert untouched and all(half[i] == plain[i] for i in untouched)
    with pytest.raises(ValueError, match="shuffle_ratio"):
        ShuffledLabels(plain, ratio=1.5, seed=0)


def test_only_the_training_set_is_shuffled(tiny_config):
    cfg = tiny_config("data.shuffle_ratio=1.0")
    charset = build_charset(cfg)
    train, _ = build_train_dataset(cfg, charset)
    assert isinstance(train, ShuffledLabels) and train.ratio == 1.0
    vals = build_val_datasets(cfg, charset)
    assert vals and not any(isinstance(v, ShuffledLabels) for v in vals.values())
    plain, _ = build_train_dataset(tiny_config(), charset)
    assert not isinstance(plain, ShuffledLabels)


# ------------------------------------------------------------------ end to end
@pytest.mark.parametrize(
    "experiment, overrides",
    [
        ("crnn_ctc", ["head.decoder=beam", "head.beam_width=2"]),
        ("crnn_attn", []),
        ("crnn_ctc_ace", []),
    ],
)
def test_train_validate_and_evaluate_each_head(tiny_config, tmp_path, experiment, overrides):
    cfg = tiny_config(
        "trainer.max_steps=2", "data.shuffle_ratio=0.5", *overrides, experiment=experiment
    )
    trainer = Trainer(cfg, tmp_path / "run")
    calls: list[bool] = []
    forward = trainer.model.head.forward

    def spy(features, targets=None):
        calls.append(targets is not None)
        return forward(features, targets)

    trainer.model.head.forward = spy
    metrics = trainer.fit()
    assert calls[:2] == [True, True]  # training teacher-forces (attention) / sees targets
    assert len(calls) > 2 and not any(calls[2:])  # validation reads without targets
    assert "synth_val/word_accuracy" in metrics

    checkpoint = tmp_path / "run" / "last.ckpt"
    model, _, _ = load_model(checkpoint, torch.device("cpu"))
    assert type(model.head) is type(trainer.model.head)
    write_folder(tmp_path / "bench" / "SETA", ["Hello", "x"])
    rows = evaluate_checkpoint(
        compose_config(
            "evaluate",
            [
                f"checkpoint={checkpoint}",
                f"data.root={tmp_path / 'bench'}",
                "data.num_workers=0",
                "data.batch_size=2",
                "device=cpu",
            ],
        )
    )
    assert rows["SETA"]["samples"] == 2


def test_ace_entropy_term_is_the_mean_frame_entropy_and_off_by_default():
    from ace_str.models.heads.ace import ACEHead, frame_entropy

    uniform = torch.zeros(2, 3, 4, 5)  # a 2D map: 12 cells of 5 classes
    assert torch.allclose(frame_entropy(uniform), torch.tensor(math.log(5)))
    peaked = torch.full((1, 4, 5), -30.0).index_fill_(2, torch.tensor([1]), 30.0)
    assert float(frame_entropy(peaked)) < 1e-6
    logits = torch.randn(2, 6, 5, requires_grad=True)
    targets, lengths = torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    plain = ACEHead(4, 5).loss(logits, targets, lengths)
    assert set(plain) == {"loss", "ace_kl"}
    weighted = ACEHead(4, 5, entropy_weight=0.5).loss(logits, targets, lengths)
    assert torch.allclose(weighted["loss"], plain["loss"] + 0.5 * frame_entropy(logits))
    assert torch.allclose(weighted["frame_entropy"], frame_entropy(logits))
    (grad,) = torch.autograd.grad(weighted["loss"] - plain["loss"], logits)
    p = logits.softmax(-1)  # dH/da = -p (log p + H_t), averaged over the 12 frames
    h = -(p * p.log()).sum(-1, keepdim=True)
    assert torch.allclose(grad, -0.5 * p * (p.log() + h) / 12, atol=1e-6)
    with pytest.raises(ValueError, match="entropy_weight"):
        ACEHead(4, 5, entropy_weight=-1.0)


def test_ace_presence_term_against_its_formula_and_gradient():
    from ace_str.models.heads.ace import ACEHead, presence_loss

    # one sample, 3 frames, classes 0 (blank) .. 3; label "1 1" (class 1 twice), padded
    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0]]])
    logits.requires_grad_(True)
    targets, lengths = torch.tensor([[1, 1, 3]]), torch.tensor([2])  # the 3 is padding
    value = presence_loss(logits, targets, lengths)
    p = logits.detach().softmax(-1).max(dim=1).values[0]  # max_t y^t_k per class
    want = -(p[1].log() + (1 - p[2]).log() + (1 - p[3]).log()) / 3  # blank left out
    assert torch.allclose(value, want)
    (grad,) = torch.autograd.grad(value, logits)
    # class 1 is strongest at frame 1, classes 2 and 3 at frame 2: frame 0 is left untouched
    assert grad[0, 0].abs().max() == 0 and grad[0, 1].abs().max() > 0
    assert grad[0, 1, 1] < 0  # raising the present class lowers the loss
    # a 2D map is flattened like ACE's, and the head adds the weighted term
    two_d = torch.randn(2, 3, 4, 5)
    targets2, lengths2 = torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    flat = presence_loss(two_d.flatten(1, 2), targets2, lengths2)
    assert torch.allclose(presence_loss(two_d, targets2, lengths2), flat)
    plain = ACEHead(4, 5).loss(two_d, targets2, lengths2)
    weighted = ACEHead(4, 5, presence_weight=2.0).loss(two_d, targets2, lengths2)
    assert torch.allclose(weighted["loss"], plain["loss"] + 2.0 * flat)
    assert "presence" not in plain and torch.allclose(weighted["presence"], flat)
    # a frame certain of a class the label lacks stays finite
    certain = torch.full((1, 2, 4), -50.0).index_fill_(2, torch.tensor([3]), 50.0)
    assert torch.isfinite(presence_loss(certain, torch.tensor([[1]]), torch.tensor([1])))
    with pytest.raises(ValueError, match="presence_weight"):
        ACEHead(4, 5, presence_weight=-1.0)


def test_ace_heads_report_skipped_samples_and_pass_the_backend():
    """A label longer than the frames under on_too_long=skip is left out of ACE and counted in
    the loss output (ace_skipped), which the trainer logs; under error there is no such key."""
    logits = torch.randn(3, 3, 6, requires_grad=True)
    targets, lengths = batch_targets([[1, 2, 3, 4], [1], [2, 2]])  # the first: 4 symbols, 3 frames
    out = ACEHead(4, 6, on_too_long="skip").loss(logits, targets, lengths)
    assert float(out["ace_skipped"]) == 1.0 and not out["ace_skipped"].requires_grad
    kept = ACEHead(4, 6).loss(logits[1:], targets[1:], lengths[1:])
    assert torch.allclose(out["loss"], kept["loss"]) and "ace_skipped" not in kept
    both = CTCACEHead(4, 6, on_too_long="skip").loss(logits[1:], targets[1:], lengths[1:])
    assert float(both["ace_skipped"]) == 0.0
    assert ACEHead(4, 6, backend="composed").criterion.backend == "composed"
    assert CTCACEHead(4, 6, ace_backend="analytic").ace.backend == "analytic"
    with pytest.raises(ValueError, match="backend=kernel.*mode=regression"):
        ACEHead(4, 6, mode="regression", backend="kernel")


def test_ace_blank_prior_sets_the_first_prediction_of_a_frame_without_evidence():
    """head.blank_prior: with zero features every frame predicts the blank at the prior and the
    other classes alike (Eq. 8's blank share from the first step); outside (0, 1) is refused."""
    head = ACEHead(8, 5, blank_prior=0.72)
    probs = head(torch.zeros(1, 3, 8)).softmax(dim=-1)
    assert torch.allclose(probs[..., 0], torch.full((1, 3), 0.72), atol=1e-6)
    assert torch.allclose(probs[..., 1:], torch.full((1, 3, 4), 0.07), atol=1e-6)
    with pytest.raises(ValueError, match="blank_prior must be in"):
        ACEHead(8, 5, blank_prior=1.0)


def test_ace_logit_noise_penalises_spread_frames_while_training_only():
    """head.logit_noise: Eq. 8 cannot tell a letter held by one certain frame from one shared by
    two frames at 0.5 each; on noisy logits the shared one scores worse on average, the certain
    one barely moves; in eval mode the loss is the noiseless Eq. 8; a negative std is refused."""
    head = ACEHead(4, 3, backend="composed", logit_noise=1.0)
    targets, lengths = batch_targets([[1]])
    committed = one_hot_logits([1, 0, 0, 0], classes=3)  # 'a' certain in one frame
    spread = torch.full((1, 4, 3), -10.0)  # 'a' and the blank alike in two frames
    spread[0, :2, :2] = 0.0
    spread[0, 2:, 0] = 10.0
    head.eval()
    clean = [float(head.loss(x, targets, lengths)["loss"]) for x in (committed, spread)]
    assert clean[0] == pytest.approx(clean[1], abs=1e-4)
    assert float(head.loss(spread, targets, lengths)["loss"]) == clean[1]  # eval: no noise
    head.train()
    torch.manual_seed(0)
    noisy = [
        sum(float(head.loss(x, targets, lengths)["loss"]) for _ in range(200)) / 200
        for x in (committed, spread)
    ]
    assert noisy[0] < clean[0] + 1e-3
    assert noisy[1] > clean[1] + 0.01
    with pytest.raises(ValueError, match="logit_noise must be at least 0"):
        ACEHead(4, 3, logit_noise=-0.5)


def test_ace_letter_weight_splits_eq8_into_how_many_and_which_letters():
    """Eq. 8 = -(1 - s) ln(1 - a) - s ln a + letter_cross_entropy exactly (s = |S| / T, a the
    frames' letter share); head.letter_weight = λ adds (λ - 1) times the letter term, value and
    gradient, and keeps Eq. 8's minimum (frames holding exactly the counts); λ <= 0 is refused."""
    from ace_str.losses.ace import ace_cross_entropy, character_counts
    from ace_str.models.heads.ace import letter_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 5, requires_grad=True)
    targets, lengths = batch_targets([[1, 2], [3, 3, 4], [2]])
    frames = torch.full((3,), 7)
    counts = character_counts(targets, lengths, 5, frames)
    mask = torch.ones(3, 7, dtype=torch.bool)
    eq8 = ace_cross_entropy(logits.log_softmax(-1), counts, mask, frames)  # per sample
    s = lengths.float() / 7
    a = 1 - logits.softmax(-1)[..., 0].mean(dim=1)
    how_many = -(1 - s) * a.neg().log1p() - s * a.log()
    letters = letter_cross_entropy(logits, targets, lengths)
    assert eq8.mean().item() == pytest.approx((how_many.mean() + letters).item(), abs=1e-5)

    head = ACEHead(4, 5, backend="composed", letter_weight=3.0)
    out = head.loss(logits, targets, lengths)
    expected = eq8.mean() + 2.0 * letters
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-5)
    assert out["letter_ce"].item() == pytest.approx(letters.item(), abs=1e-6)
    (grad,) = torch.autograd.grad(out["loss"], logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    assert "letter_ce" not in ACEHead(4, 5, backend="composed").loss(logits, targets, lengths)

    # at Eq. 8's minimum (every frame predicts N̄) the weighted loss has no gradient either
    at_minimum = (counts / 7).log().clamp(min=-30).requires_grad_(True)  # (B, C) -> all frames
    frames_at_minimum = at_minimum.unsqueeze(1).expand(3, 7, 5)
    weighted = head.loss(frames_at_minimum, targets, lengths)["loss"]
    (grad_at_minimum,) = torch.autograd.grad(weighted, at_minimum)
    assert grad_at_minimum.abs().max() < 1e-5
    with pytest.raises(ValueError, match="letter_weight must be above 0"):
        ACEHead(4, 5, letter_weight=0.0)


def test_ace_count_smoothing_is_eq8_against_smoothed_counts():
    """head.count_smoothing = eps: the loss equals Eq. 8 (the composed formula) with the counts
    replaced by (1 - eps) N̄ + eps / C, value and gradient; eps outside [0, 1) is refused."""
    from ace_str.losses.ace import ace_cross_entropy, character_counts

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 5, requires_grad=True)
    targets, lengths = batch_targets([[1, 2], [3, 3, 4], [2]])
    head = ACEHead(4, 5, backend="composed", count_smoothing=0.1)
    loss = head.loss(logits, targets, lengths)["loss"]
    frames = torch.full((3,), 7)
    counts = character_counts(targets, lengths, 5, frames)
    smoothed = 0.9 * counts + 0.1 * 7 / 5  # N'_k = T N̄'_k
    mask = torch.ones(3, 7, dtype=torch.bool)
    expected = ace_cross_entropy(logits.log_softmax(-1), smoothed, mask, frames).mean()
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    (grad,) = torch.autograd.grad(loss, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    both = ACEHead(4, 5, backend="composed", count_smoothing=0.1, entropy_weight=0.5)
    out = both.loss(logits, targets, lengths)  # the terms add up, neither replaces the other
    assert float(out["loss"]) == pytest.approx(
        float(expected + 0.5 * out["frame_entropy"]), abs=1e-5
    )
    with pytest.raises(ValueError, match="count_smoothing must be in"):
        ACEHead(4, 5, count_smoothing=1.0)
    # decoders that count from the total letter mass read the smoothing's share as letters
    # (on a smoothed checkpoint segment read 0.03% of IIIT5K): refused, by name, and not offered
    with pytest.raises(ValueError, match="decoder=apportion counts letters from the total"):
        ACEHead(4, 5, count_smoothing=0.05, decoder="apportion")
    with pytest.raises(ValueError, match="decoder=segment"):
        head.use_decoder("segment")
    assert "mass" in head.decoders and "segment" not in head.decoders
    assert "segment" in ACEHead(4, 5).decoders
