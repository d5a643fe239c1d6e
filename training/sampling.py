"""Batched sampling helpers for validation and evaluation.

A UniViGU model samples many rows per forward through ``UniViGUPipeline.sample``; :func:`wan_sample` is
plain Wan text-to-video for the base generator, which has no text stream.
"""

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu.flows import to_timestep
from univigu.models import append_positions


def position_channels(wan) -> int:
    """How many of our base generator's input channels are coordinate maps (``univigu.models.append_positions``):
    it reads ``out_channels`` latent channels plus these, so the difference (0 for Wan2.1 text-to-video)."""
    return wan.config.in_channels - (wan.config.out_channels or wan.config.in_channels)


def wan_velocity(wan, latents: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor, module=None) -> torch.Tensor:
    """A plain ``WanTransformer3DModel``'s velocity for latents [B, C, f, h, w], coordinate maps appended when it
    takes them. ``module``: the unwrapped model when ``wan`` is a DDP wrapper."""
    x = append_positions(latents, position_channels(module or wan))
    return wan(hidden_states=x, timestep=timestep, encoder_hidden_states=cond, return_dict=False)[0]


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
        v = wan_velocity(wan, x, t, conds)
        if use_cfg:
            v = v[batch:] + guidance_scale * (v[:batch] - v[batch:])
        latents = scheduler.step(v, scheduler.timesteps[i], latents, return_dict=False)[0]
    return latents
