"""Attention head in the style of clovaai's ``Attn`` (Baek et al., ICCV 2019): an LSTM decoder
with Bahdanau additive attention over the backbone's contextual features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ace_str.data.tokenizer import EOS, IGNORE, AttentionTokenizer
from ace_str.models.heads.base import Head


def additive_attention(
    projected: Tensor, hidden: Tensor, features: Tensor, score: nn.Linear
) -> tuple[Tensor, Tensor]:
    """Bahdanau et al. (2015): e_i = w^T tanh(W h_i + U s + b), alpha = softmax(e) over the
    frames, context = sum_i alpha_i h_i. ``projected`` is W h (B, T, A), ``hidden`` U s + b
    (B, A), ``features`` h (B, T, D). Returns context (B, D) and alpha (B, T)."""
    energy = score(torch.tanh(projected + hidden.unsqueeze(1))).squeeze(-1)
    alpha = energy.softmax(dim=1)
    context = torch.bmm(alpha.unsqueeze(1).to(features.dtype), features).squeeze(1)
    return context, alpha


class AttentionHead(Head):
    """Predicts [EOS] + the charset's symbols (class 0 = [EOS], 1..n = charset classes).

    With targets, teacher forcing: (B, L + 1, n + 1) logits, the last step for [EOS]. Without,
    greedy decoding from [GO] until every sample emitted [EOS] or ``max_length`` + 1 steps.
    ``embedding_dim`` null feeds the previous token back one-hot, as clovaai does.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_size: int = 256,
        max_length: int = 25,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, not {max_length}")
        self.tokenizer = AttentionTokenizer(num_classes - 1)
        self.max_length = max_length
        self.hidden_size = hidden_size
        tokens = self.tokenizer.num_inputs
        self.embedding = nn.Embedding(tokens, embedding_dim) if embedding_dim else None
        token_features = embedding_dim or tokens
        self.feature_proj = nn.Linear(in_features, hidden_size, bias=False)
        self.hidden_proj = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        self.cell = nn.LSTMCell(in_features + token_features, hidden_size)
        self.generator = nn.Linear(hidden_size, self.tokenizer.num_outputs)

    def _embed(self, tokens: Tensor, dtype: torch.dtype) -> Tensor:
        if self.embedding is not None:
            return self.embedding(tokens).to(dtype)
        return F.one_hot(tokens, self.tokenizer.num_inputs).to(dtype)

    def _step(
        self, features: Tensor, projected: Tensor, state: tuple[Tensor, Tensor], tokens: Tensor
    ) -> tuple[tuple[Tensor, Tensor], Tensor]:
        context, _ = additive_attention(projected, self.hidden_proj(state[0]), features, self.score)
        inputs = torch.cat([context, self._embed(tokens, context.dtype)], dim=1)
        hidden, cell = self.cell(inputs, state)
        return (hidden, cell), self.generator(hidden)

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        if features.dim() == 4:  # a 2D map: attend over every cell
            features = features.flatten(1, 2)
        projected = self.feature_proj(features)
        zeros = features.new_zeros(features.shape[0], self.hidden_size)
        state = (zeros, zeros)
        if targets is not None:
            steps = []
            for tokens in self.tokenizer.inputs(targets.to(features.device)).unbind(1):
                state, logits = self._step(features, projected, state, tokens)
                steps.append(logits)
            return torch.stack(steps, dim=1)
        tokens = torch.full(
            (features.shape[0],), self.tokenizer.go, dtype=torch.long, device=features.device
        )
        ended = torch.zeros_like(tokens, dtype=torch.bool)
        steps = []
        for _ in range(self.max_length + 1):
            state, logits = self._step(features, projected, state, tokens)
            steps.append(logits)
            tokens = logits.argmax(dim=-1)
            ended |= tokens == EOS
            if bool(ended.all()):
                break
        return torch.stack(steps, dim=1)

    def label_capacity(self, logits: Tensor) -> int:
        """The decoder runs up to ``max_length`` steps, whatever the features' length."""
        return self.max_length

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        """Cross-entropy over each label's symbols and its [EOS] step, padding ignored, averaged
        over the counted steps."""
        outputs = self.tokenizer.outputs(targets.to(logits.device), target_lengths)
        if logits.shape[:2] != outputs.shape:
            raise ValueError(
                f"attention loss needs teacher-forced logits of {tuple(outputs.shape)} steps, "
                f"got {tuple(logits.shape[:2])}: call the head with targets"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            loss = F.cross_entropy(
                logits.float().flatten(0, 1), outputs.flatten(), ignore_index=IGNORE
            )
        return {"loss": loss}

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        """Symbols before the first [EOS] (at most ``max_length``); confidence is the product of
        the chosen steps' probabilities, the [EOS] step included when it was reached."""
        best_prob, best = logits.float().softmax(dim=-1).max(dim=-1)
        sequences, confidences = [], []
        for tokens, probs in zip(best.tolist(), best_prob, strict=True):
            symbols = self.tokenizer.strip(tokens, self.max_length)
            used = len(symbols) + (
                1 if len(symbols) < len(tokens) and tokens[len(symbols)] == EOS else 0
            )
            confidences.append(probs[:used].clamp_min(1e-30).log().sum())
            sequences.append(symbols)
        return sequences, torch.stack(confidences).exp()
