"""Per-step previews of predicted clips: a full VAE decode, or a cheap latent-to-RGB projection.

A full-size Wan VAE takes seconds to decode one clip, too slow to scrub through fifty steps, so the studio
fits a per-channel linear map from normalised latents to RGB once per VAE: it encodes a few synthetic
colour clips and solves a least-squares problem. The projection runs in microseconds on latents of any
size and shows colours and layout faithfully enough to follow the denoising.
"""

import threading
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from ..latents import encode_frames

FULL_SIZE_BASE_DIM = 96  # Wan2.1's VAE; smaller VAEs (ShapesWorld, tiny) decode fast enough per step
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, LatentProjection]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def is_full_size(pipe) -> bool:
    """Whether per-step previews should use the projection (``auto`` mode)."""
    return int(getattr(pipe.vae.config, "base_dim", 0)) >= FULL_SIZE_BASE_DIM


class LatentProjection:
    """``rgb = latents @ weight + bias`` per latent pixel, upsampled to the clip's frames and size."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, temporal: int, spatial: int):
        self.weight = np.asarray(weight, dtype=np.float32)  # [C, 3]
        self.bias = np.asarray(bias, dtype=np.float32)  # [3]
        self.temporal, self.spatial = temporal, spatial

    def __call__(self, latents: torch.Tensor | np.ndarray, upsample: bool = True) -> np.ndarray:
        """Normalised latents [C, f, h, w] (or [1, C, f, h, w]) -> uint8 frames [F, H, W, 3]."""
        x = torch.as_tensor(latents).float()
        if x.ndim == 5:
            x = x[0]
        rgb = torch.einsum("cfhw,cd->fhwd", x, torch.from_numpy(self.weight)) + torch.from_numpy(self.bias)
        rgb = rgb.clamp(-1, 1)
        if upsample:
            # Wan's causal VAE: latent frame 0 is frame 0, each later latent frame covers `temporal` frames.
            rgb = torch.cat([rgb[:1], rgb[1:].repeat_interleave(self.temporal, dim=0)])
            rgb = F.interpolate(
                rgb.permute(0, 3, 1, 2), scale_factor=self.spatial, mode="bilinear", align_corners=False
            )
            rgb = rgb.permute(0, 2, 3, 1)
        return ((rgb + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def _synthetic_clips(size: int, frames: int, seed: int = 0) -> np.ndarray:
    """Static clips [N, F, S, S, 3] uint8: solid colours, colour gradients and colour blocks."""
    rng = np.random.default_rng(seed)
    clips = []
    for rgb in rng.integers(0, 256, size=(6, 3)):
        clips.append(np.broadcast_to(rgb.astype(np.uint8), (size, size, 3)))
    ramp = np.linspace(0, 255, size)
    for a, b in [(0, 1), (1, 2), (2, 0)]:
        img = np.zeros((size, size, 3))
        img[..., a] = ramp[None, :]
        img[..., b] = ramp[:, None]
        img[..., 3 - a - b] = 255 - ramp[None, :]
        clips.append(img.astype(np.uint8))
    for _ in range(3):  # 4x4 blocks of random colours: edges between flat regions
        blocks = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
        clips.append(np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8)))
    return np.stack([np.broadcast_to(c, (frames, size, size, 3)) for c in clips])


def fit_projection_from(latents: torch.Tensor, clips: np.ndarray, temporal: int, spatial: int) -> LatentProjection:
    """Least squares from latents [N, C, f, h, w] of static clips [N, F, H, W, 3] to their pooled colours."""
    n, c, f, h, w = latents.shape
    target = torch.from_numpy(np.ascontiguousarray(clips[:, 0])).float().permute(0, 3, 1, 2) / 127.5 - 1
    target = F.adaptive_avg_pool2d(target, (h, w)).permute(0, 2, 3, 1)  # [N, h, w, 3]
    x = latents.permute(0, 2, 3, 4, 1).reshape(-1, c)  # every latent frame of a static clip shows frame 0
    y = target[:, None].expand(n, f, h, w, 3).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    solution = torch.linalg.lstsq(x1, y, driver="gelsd").solution  # [C+1, 3]
    return LatentProjection(solution[:-1].numpy(), solution[-1].numpy(), temporal, spatial)


def fit_projection(pipe, size: int | None = None) -> LatentProjection:
    """Encode synthetic static clips through ``pipe``'s VAE (one batch) and fit latents -> RGB."""
    t, s = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
    clips = _synthetic_clips(size or 8 * s, 1 + t)
    return fit_projection_from(encode_frames(pipe.vae, clips, batch_size=len(clips)), clips, t, s)


def projection_for(pipe) -> LatentProjection:
    """The cached projection of ``pipe``'s VAE, fitted on first use (callers hold the pipeline's lock)."""
    with _CACHE_LOCK:
        projection = _CACHE.get(pipe.vae)
    if projection is None:
        projection = fit_projection(pipe)
        with _CACHE_LOCK:
            _CACHE[pipe.vae] = projection
    return projection


def cached_projection(pipe) -> LatentProjection | None:
    """The projection of ``pipe``'s VAE if it was fitted already (never touches the VAE)."""
    with _CACHE_LOCK:
        return _CACHE.get(pipe.vae)


def filmstrip(frames: np.ndarray, max_frames: int = 8, height: int = 96, gap: int = 2) -> np.ndarray:
    """Up to ``max_frames`` frames, evenly sampled, side by side at ``height`` px (nearest-neighbour)."""
    frames = np.asarray(frames, dtype=np.uint8)
    idx = np.unique(np.round(np.linspace(0, len(frames) - 1, min(max_frames, len(frames)))).astype(int))
    picked = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float()
    h, w = picked.shape[-2:]
    scale = height / h
    mode = "nearest" if scale >= 1 else "area"
    picked = F.interpolate(picked, size=(height, max(1, round(w * scale))), mode=mode)
    picked = picked.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    tiles = []
    for k, tile in enumerate(picked):
        tiles.append(tile)
        if k < len(picked) - 1:
            tiles.append(np.full((height, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles, axis=1)
