"""Tiny randomly initialised pipelines: the real classes and code path at a size that runs in seconds.

Used by the tests, the CLI's smoke runs and the app's development mode. ``tiny_components`` is also the
starting point of the ShapesWorld model, whose sizes are passed in by the training configs.
"""

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from .models import UniViGUTransformer
from .pipeline_univigu import UniViGUPipeline
from .tokenization import build_word_tokenizer

TINY_WORDS = "a red green blue circle square triangle moves left right up down stays still , .".split()


def tiny_vae(base_dim: int = 8, z_dim: int = 4) -> AutoencoderKLWan:
    """4x temporal, 4x spatial Wan VAE with a few channels."""
    return AutoencoderKLWan(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[True, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
        scale_factor_temporal=4,
        scale_factor_spatial=4,
    )


def tiny_text_encoder(vocab_size: int, d_model: int = 32, num_layers: int = 1) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
    )
    return UMT5EncoderModel(config)


def tiny_wan_config(
    in_channels: int = 4, text_dim: int = 32, num_layers: int = 2, heads: int = 2, head_dim: int = 32
) -> dict:
    return dict(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=in_channels,
        text_dim=text_dim,
        freq_dim=256,
        ffn_dim=3 * heads * head_dim,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        rope_max_seq_len=1024,
    )


def tiny_pipeline(
    words: list[str] = TINY_WORDS,
    text_formulation: str = "discrete",
    text_source: str = "mask",
    max_text_len: int = 16,
    size: tuple[int, int, int] = (5, 16, 16),
    seed: int = 0,
) -> UniViGUPipeline:
    """A random UniViGU pipeline over ``words``; clips of ``size`` = (frames, height, width)."""
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(words, model_max_length=max_text_len)
    vae = tiny_vae()
    text_encoder = tiny_text_encoder(len(tokenizer))
    wan = WanTransformer3DModel(**tiny_wan_config(in_channels=vae.config.z_dim))
    transformer = UniViGUTransformer.from_wan(
        wan,
        text_formulation=text_formulation,
        vocab_size=len(tokenizer),
        text_source=text_source,
        pad_token_id=tokenizer.pad_token_id,
        max_text_len=max_text_len,
        text_latent_dim=16,
    )
    # A fresh Wan-derived text head is zero; give it random weights so tests see a real text signal.
    torch.nn.init.normal_(transformer.text_proj_out.weight, std=0.5)
    frames, height, width = size
    return UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        default_num_frames=frames,
        default_height=height,
        default_width=width,
        fps=8,
    )
