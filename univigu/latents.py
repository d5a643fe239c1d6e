"""Pixels <-> normalised Wan latents: the one place that knows both conventions.

Frames are uint8 ``[..., F, H, W, 3]``; the VAE reads and writes ``[..., 3, F, H, W]`` in [-1, 1]. The transformer
works on latents normalised per channel by the VAE config's ``latents_mean`` / ``latents_std`` (Wan's).
"""

import numpy as np
import torch


def frames_to_pixels(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames [..., F, H, W, 3] -> float pixels [..., 3, F, H, W] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -4)


def pixels_to_frames(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels [..., 3, F, H, W] in [-1, 1] (clamped) -> uint8 frames [..., F, H, W, 3] on the CPU."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.movedim(-4, -1).cpu()


def frames_to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 frames -> float32 in [0, 1] (the ``np`` output of diffusers' video pipelines)."""
    return np.asarray(frames).astype(np.float32) / 255.0


def latent_stats(vae, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's per-channel latent mean and std, shaped [1, C, 1, 1, 1] to broadcast over [B, C, f, h, w]."""
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=dtype).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=device, dtype=dtype).view(1, z, 1, 1, 1)
    return mean, std


def normalize(latents: torch.Tensor, vae) -> torch.Tensor:
    """Raw VAE latents [B, C, f, h, w] -> the transformer's normalised space."""
    mean, std = latent_stats(vae, latents.device, latents.dtype)
    return (latents - mean) / std


def denormalize(latents: torch.Tensor, vae) -> torch.Tensor:
    """Normalised latents [B, C, f, h, w] -> raw VAE latents."""
    mean, std = latent_stats(vae, latents.device, latents.dtype)
    return latents * std + mean


@torch.no_grad()
def encode_frames(vae, clips: np.ndarray | torch.Tensor, batch_size: int = 16, normalized: bool = True) -> torch.Tensor:
    """uint8 clips [N, F, H, W, 3] -> latent means [N, C, f, h, w] (float32, CPU), normalised unless asked raw;
    ``batch_size`` clips per VAE call."""
    out = []
    for i in range(0, len(clips), batch_size):
        x = frames_to_pixels(clips[i : i + batch_size]).to(vae.device, vae.dtype)
        out.append(vae.encode(x).latent_dist.mode().float().cpu())
    latents = torch.cat(out)
    return normalize(latents, vae) if normalized else latents


@torch.no_grad()
def decode_frames(vae, latents: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Normalised latents [N, C, f, h, w] -> uint8 clips [N, F, H, W, 3] (CPU); ``batch_size`` clips per call."""
    clips = []
    for i in range(0, len(latents), batch_size):
        z = denormalize(latents[i : i + batch_size].to(vae.device, vae.dtype), vae)
        clips.append(pixels_to_frames(vae.decode(z).sample))
    return torch.cat(clips)
