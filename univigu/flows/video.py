"""Video flow matching as Wan trains and samples it, in VAE latent space.

Path: ``x_sigma = (1 - sigma) * x0 + sigma * noise``; the model predicts the velocity
``v = noise - x0`` and the clean estimate is ``x0_hat = x_sigma - sigma * v``. Sampling integrates
with diffusers' ``FlowMatchEulerDiscreteScheduler`` (``x += v * (sigma_next - sigma)``).
"""

import torch
import torch.nn.functional as F


def _bcast(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return sigma.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class VideoFlow:
    """Continuous flow matching on latents [B, C, F, H, W]."""

    @staticmethod
    def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = _bcast(sigma, x0)
        return (1 - s) * x0 + s * noise

    @staticmethod
    def target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise - x0

    @staticmethod
    def predict_x0(x_t: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x_t - _bcast(sigma, x_t) * velocity

    @staticmethod
    def loss(velocity: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample mean squared error [B]; with ``weight`` (broadcastable to the latents, e.g. [B, 1, F, H, W])
        the per-sample weighted mean."""
        error = F.mse_loss(velocity.float(), target.float(), reduction="none")
        if weight is None:
            return error.flatten(1).mean(1)
        weight = weight.float().expand_as(error)
        return (error * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
