"""A plain diffusers ``WanTransformer3DModel`` behind :class:`UniViGUTransformer`'s call contract.

The base generator of the recipe is a Wan text-to-video model (possibly reading coordinate maps beside the latents,
:func:`append_positions`); it has no text stream. :class:`WanAdapter` lets code written for UniViGU (the training
loss, a sampler) call it the same way: ``video_latents``, ``video_timestep``, ``encoder_hidden_states`` in, an
output whose ``video_velocity`` is Wan's prediction and whose text outputs are ``None``. It composes the model
rather than subclassing it, so the model stays a stock ``WanTransformer3DModel`` (its weights, ``save_pretrained``,
FSDP units and LoRA loading are diffusers' own), and it can hold the model's DDP / FSDP wrapper for training.
"""

from typing import Any

import torch

from .transformer_univigu import UniViGUTransformerOutput, append_positions


def position_channels(config) -> int:
    """How many of a Wan model's input channels are coordinate maps (:func:`append_positions`): it reads
    ``out_channels`` latent channels plus these, so the difference (0 for Wan2.1 text-to-video)."""
    return config.in_channels - (config.out_channels or config.in_channels)


class WanAdapter:
    """Calls ``wan`` (a ``WanTransformer3DModel``, or its DDP / FSDP wrapper with the model's ``config`` given)
    as :meth:`UniViGUTransformer.forward` is called."""

    def __init__(self, wan, config=None):
        self.wan = wan
        self.config = config if config is not None else wan.config

    def __call__(
        self,
        video_latents: torch.Tensor,
        video_timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_timestep: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_latents: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> UniViGUTransformerOutput | tuple:
        """Wan's velocity for ``video_latents`` [B, C, F, H, W] at ``video_timestep`` (0..1000), coordinate maps
        appended when the model reads them. A text stream cannot be given: this model has none."""
        if text_tokens is not None or text_latents is not None:
            raise ValueError("a WanTransformer3DModel has no text stream: pass video inputs only")
        hidden_states = append_positions(video_latents, position_channels(self.config))
        velocity = self.wan(
            hidden_states=hidden_states,
            timestep=video_timestep,
            encoder_hidden_states=encoder_hidden_states,
            attention_kwargs=attention_kwargs,
            return_dict=False,
        )[0]
        if not return_dict:
            return velocity, None
        return UniViGUTransformerOutput(video_velocity=velocity)
