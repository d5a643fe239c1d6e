"""Continuous flow over token embeddings, decoded by nearest embedding (the paper's eq. 7-8).

Clean point ``x1 = E[ids]`` from a fixed codebook E [V, D]; the path, target and Euler step are the
video flow's (``x_sigma = (1 - sigma) E[ids] + sigma * noise``, ``v = noise - E[ids]``). Decoding maps a
clean estimate to the nearest codebook row; its confidence is the softmax of ``-|x - E_k|^2 / 2``.
"""

import torch
import torch.nn.functional as F

from .video import VideoFlow


class EmbeddingTextFlow(VideoFlow):
    """Flow over text latents [B, L, D] with codebook ``token_embeddings`` [V, D]."""

    def __init__(self, token_embeddings: torch.Tensor):
        self.codebook = token_embeddings

    @classmethod
    def from_transformer(cls, transformer) -> "EmbeddingTextFlow":
        return cls(transformer.token_embeddings)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.codebook.to(ids.device)[ids]

    def decode(self, x1_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest-embedding ids [B,L] and their confidence [B,L] for estimates [B,L,D]."""
        codebook = self.codebook.to(x1_hat.device, torch.float32)
        dist = torch.cdist(x1_hat.float(), codebook.expand(x1_hat.shape[0], -1, -1)) ** 2  # [B, L, V]
        probs = F.softmax(-dist / 2, dim=-1)
        conf, ids = probs.max(-1)
        return ids, conf

    @staticmethod
    def step(x_t: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        return x_t + velocity.to(x_t.dtype) * (float(sigma_next) - float(sigma))
