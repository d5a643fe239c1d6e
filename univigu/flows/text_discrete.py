"""Discrete flow matching over token ids with a mixture path (our own code, after Gat et al. 2024).

Written in the literature's time ``t = 1 - sigma`` (``t = 1`` clean). Path: each position independently
holds the data token ``x1`` with probability ``kappa(t) = t**exponent`` and the source token ``x0``
otherwise; the source is all-mask (``"mask"``) or uniform over the real vocabulary (``"uniform"``, the
pad id excluded so that a pad in ``x_t`` is always a revealed one). The model predicts ``p(x1 | x_t)``
as logits and is trained with cross-entropy. The sampler takes Euler jumps: from ``t`` to ``t'`` a
position jumps to a draw from ``p(x1 | x_t)`` with probability ``(kappa(t') - kappa(t)) / (1 - kappa(t))``,
which is 1 at the last step, so the final state is entirely the model's prediction.

With the mask source, ``order="confidence"`` keeps the schedule's count of reveals per step but makes them
the most confident masked positions rather than random ones (the MaskGIT / LLaDA sampler): positions
revealed together at random are predicted independently, which writes "at at" or drops a word; revealing
the surest few first lets the rest be predicted given them.

A text ends once: its last word, an end token, then pads. With ``end_token_ids`` (the tokenizer's ``</s>``
and the pad id) a mask-source step keeps it so: no end token is revealed before a revealed word, and every
position after a revealed end token becomes pad. Without it an end-of-text guess revealed early (a pad is
the surest token of a short caption's tail) can land inside a longer caption the later steps write, which
then reads only up to that pad.
"""

import torch
import torch.nn.functional as F


class DiscreteTextFlow:
    """Mixture-path discrete flow over ids in ``[0, vocab_size)`` (+ the mask id ``vocab_size``)."""

    def __init__(self, vocab_size: int, source: str = "mask", pad_token_id: int = 0, exponent: float = 1.0):
        if source not in ("mask", "uniform"):
            raise ValueError(f"source must be 'mask' or 'uniform', got {source!r}")
        self.vocab_size = vocab_size
        self.source = source
        self.pad_token_id = pad_token_id
        self.exponent = exponent
        self.mask_token_id = vocab_size if source == "mask" else None

    @classmethod
    def from_transformer(cls, transformer, exponent: float = 1.0) -> "DiscreteTextFlow":
        cfg = transformer.config
        return cls(cfg.vocab_size, cfg.text_source, cfg.pad_token_id, exponent)

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        return t.clamp(0, 1) ** self.exponent

    def sample_source(self, shape, generator=None, device="cpu") -> torch.Tensor:
        """x0 [*shape]: all mask ids, or uniform ids with the pad id never drawn."""
        if self.source == "mask":
            return torch.full(shape, self.mask_token_id, dtype=torch.long, device=device)
        ids = torch.randint(0, self.vocab_size - 1, shape, generator=generator, device=device)
        return ids + (ids >= self.pad_token_id).long()  # skip the pad id

    def add_noise(self, x1: torch.Tensor, sigma: torch.Tensor, generator=None) -> torch.Tensor:
        """x_t [B,L] for clean ids x1 [B,L] at noise levels sigma [B]."""
        keep_prob = self.kappa(1 - sigma.float()).reshape(-1, 1).to(x1.device)
        keep = torch.rand(x1.shape, generator=generator, device=x1.device) < keep_prob
        return torch.where(keep, x1, self.sample_source(x1.shape, generator, x1.device))

    def loss(self, logits: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Per-sample cross-entropy [B] of logits [B,L,V'] against x1 [B,L], averaged over positions."""
        ce = F.cross_entropy(logits.float().transpose(1, 2), x1, reduction="none")
        return ce.mean(1)

    def posterior(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """p(x1 | x_t) [B,L,V] over real tokens (the mask id is never a prediction)."""
        logits = logits.float()[..., : self.vocab_size]
        return F.softmax(logits / max(temperature, 1e-6), dim=-1)

    def step(
        self,
        x_t: torch.Tensor,
        logits: torch.Tensor,
        sigma: float,
        sigma_next: float,
        temperature: float = 0.0,
        generator=None,
        order: str = "random",
        end_token_ids: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """One Euler jump from noise level ``sigma`` to ``sigma_next`` (< sigma). ``temperature=0`` is greedy.

        ``order``: ``"random"`` (each position jumps independently) or, mask source only, ``"confidence"``.
        ``end_token_ids``: mask source only, the ids that end a text (``</s>``, pad): the text keeps the form
        words, end, pads (module docstring).
        """
        ends = None
        if end_token_ids and self.source == "mask":
            ends = torch.tensor(sorted(set(end_token_ids)), device=x_t.device)
            logits = self._no_end_before_words(x_t, logits, ends)
        new = self._jump(x_t, logits, sigma, sigma_next, temperature, generator, order)
        return new if ends is None else self._close_text(x_t, new, logits, ends)

    def _no_end_before_words(self, x_t: torch.Tensor, logits: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """``logits`` with the end tokens ruled out at and before each row's last revealed word."""
        pos = torch.arange(x_t.shape[1], device=x_t.device)
        word = (x_t != self.mask_token_id) & ~torch.isin(x_t, ends)
        last_word = torch.where(word, pos, -1).max(1, keepdim=True).values
        logits = logits.clone()
        blocked = logits[..., ends].masked_fill((pos <= last_word)[..., None], float("-inf"))
        logits[..., ends] = blocked
        return logits

    def _close_text(self, x_t, new, logits, ends) -> torch.Tensor:
        """``new`` in the form words, end, pads: an end token revealed in this step before a word revealed in
        it becomes its best word instead, and every position after the first end token becomes pad."""
        pos = torch.arange(new.shape[1], device=new.device)
        is_end = torch.isin(new, ends)
        word = (new != self.mask_token_id) & ~is_end
        last_word = torch.where(word, pos, -1).max(1, keepdim=True).values
        undo = is_end & (x_t == self.mask_token_id) & (pos < last_word)
        if undo.any():
            best_word = logits[..., : self.vocab_size].index_fill(-1, ends, float("-inf")).argmax(-1)
            new = torch.where(undo, best_word, new)
            is_end = torch.isin(new, ends)
        first_end = torch.where(is_end, pos, new.shape[1]).min(1, keepdim=True).values
        return torch.where(pos > first_end, torch.full_like(new, self.pad_token_id), new)

    def _jump(self, x_t, logits, sigma, sigma_next, temperature, generator, order) -> torch.Tensor:
        if order not in ("random", "confidence"):
            raise ValueError(f"order must be 'random' or 'confidence', got {order!r}")
        if order == "confidence" and self.source != "mask":
            raise ValueError("confidence order needs the mask source: a uniform source has no masked positions")
        t, t_next = 1.0 - float(sigma), 1.0 - float(sigma_next)
        k, k_next = self.kappa(torch.tensor(t)), self.kappa(torch.tensor(t_next))
        p_jump = 1.0 if sigma_next <= 0 else float(((k_next - k) / (1 - k).clamp_min(1e-12)).clamp(0, 1))
        if temperature <= 0:
            proposal = logits[..., : self.vocab_size].argmax(-1)
        else:
            probs = self.posterior(logits, temperature)
            proposal = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(x_t.shape)
        if order == "confidence":
            masked = x_t == self.mask_token_id
            reveal = (masked.sum(1, keepdim=True) * p_jump).round()  # the schedule's expected count per row
            confidence = self.posterior(logits).gather(-1, proposal.unsqueeze(-1)).squeeze(-1)
            confidence = confidence.masked_fill(~masked, -1.0)
            rank = confidence.argsort(1, descending=True).argsort(1)
            return torch.where(masked & (rank < reveal), proposal, x_t)
        jump = torch.rand(x_t.shape, generator=generator, device=x_t.device) < p_jump
        if self.source == "mask":
            jump &= x_t == self.mask_token_id  # a revealed token is x1 under the path: keep it
        return torch.where(jump, proposal, x_t)
