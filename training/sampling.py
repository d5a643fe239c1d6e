"""Batched sampling helpers for validation and evaluation.

A UniViGU model samples many rows per forward through ``UniViGUPipeline.sample``; :func:`wan_sample` is
plain Wan text-to-video for the base generator, which has no text stream.
"""

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu.flows import to_timestep
from univigu.models import WanAdapter


@torch.no_grad()
def wan_sample(
    wan,
    scheduler: FlowMatchEulerDiscreteScheduler,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    latent_shape: tuple[int, ...],
    steps: int = 20,
    guidance_scale: float = 5.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Text-to-video with a plain ``WanTransformer3DModel``: latents [B, C, f, h, w]."""
    batch = cond.shape[0]
    use_cfg = guidance_scale > 1.0
    conds = torch.cat([cond, uncond.expand(batch, -1, -1)]) if use_cfg else cond
    latents = torch.randn((batch, *latent_shape), generator=generator, dtype=torch.float32).to(cond.device, wan.dtype)
    scheduler.set_timesteps(steps)
    for i, sigma in enumerate(scheduler.sigmas[:-1].tolist()):
        x = torch.cat([latents, latents]) if use_cfg else latents
        t = torch.full((x.shape[0],), float(to_timestep(torch.tensor(sigma))), device=cond.device)
        v = WanAdapter(wan)(x, t, conds).video_velocity  # coordinate maps appended when it reads them
        if use_cfg:
            v = v[batch:] + guidance_scale * (v[:batch] - v[batch:])
        latents = scheduler.step(v, scheduler.timesteps[i], latents, return_dict=False)[0]
    return latents
