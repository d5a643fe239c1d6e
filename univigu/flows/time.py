"""Noise levels: sampling them for training and converting them to model timesteps."""

import torch

NUM_TRAIN_TIMESTEPS = 1000


def to_timestep(sigma: torch.Tensor) -> torch.Tensor:
    """Model timestep for a noise level: ``sigma * 1000`` (Wan's convention, 1000 = pure noise)."""
    return sigma * NUM_TRAIN_TIMESTEPS


def shift_sigmas(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan/SD3 time shift ``s*sigma / (1 + (s-1)*sigma)``: spends more steps at high noise when s > 1."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_sigmas(
    batch: int, shift: float = 1.0, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Training noise levels [batch]: uniform in (0, 1), then shifted."""
    u = torch.rand(batch, generator=generator, device=device)
    return shift_sigmas(u, shift)
