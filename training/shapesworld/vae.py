"""The ShapesWorld VAE: a Wan VAE trained per frame, then made to compress time (4x or 2x) and fine-tuned on clips.

A per-frame ``AutoencoderKLWan`` (4x or 2x spatial, no temporal compression; base_dim 16, z_dim 8; see
:func:`build_vae`) trained on the dataset's frames with an object-weighted L1 + MSE reconstruction loss and a
small KL term, then turned into a temporally compressing VAE (:func:`temporal_from_per_frame`: 4x as Wan's,
or 2x) and fine-tuned on whole clips; ``latents_mean/std`` in its config come from the data
(:func:`set_latent_stats`), so the transformer sees unit-scale latents. :func:`detector_accuracy` reads its
reconstructions with the ShapesWorld detector: the ceiling for text-to-video.
"""

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample

from univigu.durable import replace_with
from univigu.latents import encode_frames, frames_to_pixels, pixels_to_frames

from .detect import detect, palette_indices
from .render import render
from .sample import iter_split
from .score import aggregate, score_detection
from .text import detailed_caption


def build_vae(base_dim: int = 16, z_dim: int = 8, spatial: int = 4) -> AutoencoderKLWan:
    """A per-frame Wan VAE with ``spatial`` (4 or 2) x spatial compression: 17x64x64 clips ->
    [z_dim, 17, 64 / spatial, 64 / spatial] latents.

    No temporal downsampling, and every causal convolution's kernel slices over past frames start (and,
    trained on single frames, stay) at zero: each frame is encoded and decoded on its own, so the VAE can be
    trained as an image autoencoder -- 17x cheaper per sample than on clips, which is what makes it learn
    the objects within minutes on a CPU. The price is 17 latent frames: with (1, 4, 4) patches the
    transformer would see 17 x 4 x 4 = 272 video tokens, which :func:`temporal_from_per_frame` cuts to 80
    (a patch of 8 x 16 = 128 values needs a hidden size of at least 128: ``training.train`` refuses smaller
    ones). At 2x spatial compression (one downsampling, a 32 x 32 latent of 2 x 2-pixel cells) the small
    objects keep their corners: give it z_dim 4 and (1, 8, 8) patches for the same tokens, 256 values each.
    """
    dim_mult = {4: [1, 2, 4], 2: [1, 2]}.get(spatial)
    if dim_mult is None:
        raise ValueError(f"spatial compression must be 2 or 4, got {spatial}")
    vae = AutoencoderKLWan(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=dim_mult,
        num_res_blocks=1,
        temperal_downsample=[False] * (len(dim_mult) - 1),
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
        scale_factor_temporal=1,
        scale_factor_spatial=spatial,
    )
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanCausalConv3d) and module.weight.shape[2] > 1:
                module.weight[:, :, :-1] = 0
    return vae


def temporal_from_per_frame(per_frame: AutoencoderKLWan, factor: int = 4) -> AutoencoderKLWan:
    """A temporally compressing Wan VAE from a trained per-frame one: ``factor`` 4 (Wan's own: 17 frames -> 5
    latent frames, both downsamplings temporal) or 2 (17 -> 9, only the inner one).

    Every weight is copied; the only new ones, the resamplers' temporal convolutions, start as "keep the
    newest frame" (downsampling) and "repeat the frame" (upsampling), so before any fine-tuning the VAE
    encodes every ``factor``-th frame and decodes each latent frame as ``factor`` copies of it. A 2x-spatial
    VAE downsamples once, so it takes factor 2 only. With (1, 4, 4) patches on a 4x-spatial VAE the transformer
    then sees 5 x 4 x 4 = 80 video tokens (factor 4) or 9 x 4 x 4 = 144 (factor 2) instead of 272.
    Factor 2 keeps what the per-frame VAE reads of small moving shapes; 4 loses much of it (``EXPERIMENTS.md``).
    """
    cfg = per_frame.config
    levels = len(cfg.temperal_downsample)  # spatial downsamplings; the innermost ones become temporal too
    if any(cfg.temperal_downsample) or levels not in (1, 2):
        raise ValueError(f"expected a per-frame VAE with one or two downsamplings, got {cfg.temperal_downsample}")
    if factor not in (2, 4) or factor > 2**levels:
        allowed = "2 or 4" if levels == 2 else "2 (it downsamples once)"
        raise ValueError(f"temporal factor must be {allowed} for this VAE, got {factor}")
    temporal = factor.bit_length() - 1
    downsample = [False] * (levels - temporal) + [True] * temporal
    vae = AutoencoderKLWan(
        base_dim=cfg.base_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=downsample,
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
        scale_factor_temporal=factor,
        scale_factor_spatial=cfg.scale_factor_spatial,
    )
    missing, unexpected = vae.load_state_dict(per_frame.state_dict(), strict=False)
    if unexpected or any("time_conv" not in name for name in missing):
        raise ValueError(f"per-frame VAE weights do not fit: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanResample) and hasattr(module, "time_conv"):
                weight = module.time_conv.weight  # [copies * dim, dim, 3, 1, 1]
                weight.zero_()
                module.time_conv.bias.zero_()
                dim = weight.shape[1]
                for k in range(weight.shape[0] // dim):
                    weight[k * dim : (k + 1) * dim, :, -1, 0, 0] = torch.eye(dim)
    return vae


def _decode_unclamped(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    # AutoencoderKLWan._decode without its final clamp to [-1, 1]: a clamped pixel has no gradient, and
    # once a spike pushes the decoder past the range, training stalls there. Same frame loop otherwise.
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    frames = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        frames.append(
            vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0)
        )
    vae.clear_cache()
    return torch.cat(frames, 2)


def _crop(clip: torch.Tensor, crop: int, grid: int, object_crops: float, gen: torch.Generator) -> torch.Tensor:
    """A ``crop`` x ``crop`` window of a uint8 clip [F, H, W, 3] starting on the latent grid.

    With probability ``object_crops`` the window is centred (up to the grid) on a random pixel unlike the
    background, so most crops hold part of an object; otherwise it is placed uniformly.
    """
    _, height, width, _ = clip.shape
    fg = (clip.int() - clip.flatten(0, 2).median(dim=0).values.int()).abs().sum(-1) > 20
    ys, xs = fg.any(0).nonzero(as_tuple=True)
    if len(ys) and float(torch.rand((), generator=gen)) < object_crops:
        k = int(torch.randint(0, len(ys), (1,), generator=gen))
        y0, x0 = (int(c) - crop // 2 for c in (ys[k], xs[k]))
    else:
        y0, x0 = (int(torch.randint(0, s - crop + 1, (1,), generator=gen)) for s in (height, width))
    y0, x0 = (grid * round(max(0, min(c, s - crop)) / grid) for c, s in ((y0, height), (x0, width)))
    return clip[:, y0 : y0 + crop, x0 : x0 + crop]


def train_vae(
    vae: AutoencoderKLWan,
    clips: torch.Tensor,
    steps: int = 1500,
    batch_size: int = 32,
    window: int = 1,
    crop: int = 32,
    lr: float = 1e-3,
    kl_weight: float = 1e-5,
    fg_weight: float = 10.0,
    warmup: int = 30,
    object_crops: float = 0.8,
    seed: int = 0,
    log=print,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 250,
) -> list[float]:
    """Train ``vae`` in place on uint8 clips [N, F, H, W, 3] with random ``window``-frame, ``crop``-px crops.

    The VAE is convolutional, so 32x32 crops (a quarter of the cost of whole frames) teach it the same
    colours and edges; crops start on the latent grid. Objects cover a few percent of a ShapesWorld frame and
    an autoencoder learns the background first and the objects much later, so by default most crops are
    centred on an object (``object_crops``) and pixels unlike the clip's background (its per-channel median)
    weigh 1 + ``fg_weight``. ``window`` = 1 trains on single frames (enough for :func:`build_vae`'s per-frame
    VAE); a temporally compressing VAE needs whole clips, since on short windows its causal cache drifts.

    ``checkpoint``: a file that holds the weights, optimizer, random generator and losses every
    ``checkpoint_every`` steps and at the end; a run stopped at any point and started again with the same
    arguments resumes from it and ends with the same weights as an unbroken one, and a finished run started
    again returns its weights at once. The caller deletes it once the weights are saved elsewhere.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    losses, start, first = [], time.time(), 0
    # what a checkpoint must have been made with to be continued: these settings and the VAE's architecture
    architecture = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    settings = json.dumps(
        [steps, batch_size, window, crop, lr, kl_weight, fg_weight, warmup, object_crops, seed, list(clips.shape)]
        + [architecture],
        sort_keys=True,
        default=str,
    )
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=True)
        if state.get("settings", settings) != settings:
            raise ValueError(
                f"{checkpoint} is another VAE run's (other steps, data or settings): delete it to start over"
            )
        vae.load_state_dict(state["vae"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        losses, first = state["losses"].tolist(), int(state["step"])
        log(f"vae: resuming at step {first}/{steps} from {checkpoint}")
    vae.train()
    num_frames = clips.shape[1]
    grid = vae.config.scale_factor_spatial
    for step in range(first, steps):
        for group in opt.param_groups:
            group["lr"] = (
                lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
            )
        idx = torch.randint(0, len(clips), (batch_size,), generator=gen)
        t0 = int(torch.randint(0, num_frames - window + 1, (1,), generator=gen))
        crops = [_crop(clips[i, t0 : t0 + window], crop, grid, object_crops, gen) for i in idx.tolist()]
        x = frames_to_pixels(torch.stack(crops)).to(vae.device)  # crops are cut on the CPU
        posterior = vae.encode(x).latent_dist
        # Decode the mean, not a sample: with a tiny KL weight the posterior's unit-variance noise at
        # initialisation would drown the latents and leave the decoder predicting blur.
        recon = _decode_unclamped(vae, posterior.mean)
        err = (recon - x).abs() + (recon - x).pow(2)
        if fg_weight > 0:
            background = x.flatten(2).median(dim=2).values[:, :, None, None, None]
            foreground = ((x - background).abs().sum(1, keepdim=True) > 0.1).float()
            weight = 1 + fg_weight * foreground
            rec = (err * weight).sum() / (weight.sum() * x.shape[1])
        else:
            rec = err.mean()
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1 - posterior.logvar).mean()
        loss = rec + kl_weight * kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"VAE loss is {float(loss)} at step {step}; lower --vae-lr")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 0.5)
        opt.step()
        losses.append(float(rec.detach()))
        if step % 50 == 0 or step == steps - 1:
            log(
                f"vae step {step}/{steps} recon {float(rec.detach()):.4f} kl {float(kl.detach()):.3f} "
                f"({time.time() - start:.0f}s)"
            )
        if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            _save_checkpoint(checkpoint, vae, opt, gen, losses, step + 1, settings)
    vae.eval().requires_grad_(False)
    return losses


def _save_checkpoint(path, vae, opt, gen, losses, step, settings: str) -> None:
    # written whole (replace_with): a kill leaves the previous checkpoint or this one
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "vae": vae.state_dict(),
        "opt": opt.state_dict(),
        "gen": gen.get_state(),
        "losses": torch.tensor(losses, dtype=torch.float64),
        "step": step,
        "settings": settings,
    }
    replace_with(path, lambda tmp: torch.save(state, tmp))


@torch.no_grad()
def set_latent_stats(vae: AutoencoderKLWan, clips) -> tuple[list[float], list[float]]:
    """Measure per-channel latent mean/std on ``clips`` and store them in the VAE's config."""
    z = encode_frames(vae, clips, normalized=False)
    mean = z.mean(dim=(0, 2, 3, 4)).tolist()
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3).tolist()
    vae.register_to_config(latents_mean=mean, latents_std=std)
    return mean, std


@torch.no_grad()
def palette_accuracy(vae: AutoencoderKLWan, clips) -> float:
    """Fraction of pixels whose nearest ShapesWorld palette colour survives encode -> decode."""
    z = encode_frames(vae, clips, normalized=False)
    hits = total = 0
    for i in range(len(clips)):
        recon = pixels_to_frames(vae.decode(z[i : i + 1]).sample[0])
        a, b = palette_indices(np.asarray(clips[i])), palette_indices(recon.numpy())
        hits += int((a == b).sum())
        total += a.size
    return hits / total


@torch.no_grad()
def detector_accuracy(vae: AutoencoderKLWan, n: int = 24) -> dict:
    """Detector accuracy on encode -> decode of ``n`` val clips: a ceiling for text-to-video. ``main_shape_by``:
    the main object's shape accuracy split by its size and whether it moves (where a VAE loses shape)."""
    scenes = [s for _, s in iter_split("val", n)]
    clips = np.stack([render(s) for s in scenes])
    z = encode_frames(vae, clips, normalized=False)
    rows = []
    for i in range(n):
        recon = pixels_to_frames(vae.decode(z[i : i + 1]).sample[0])
        rows.append(score_detection(detect(recon.numpy()), detailed_caption(scenes[i])))
    result = {k: round(v, 3) for k, v in aggregate(rows).items()}
    groups: dict[str, list[int]] = {}
    for scene, row in zip(scenes, rows):
        key = f"{scene.main.size}, {'still' if scene.main.motion == 'stays still' else 'moving'}"
        groups.setdefault(key, []).append(row["shape"])
    result["main_shape_by"] = {k: f"{sum(v)}/{len(v)}" for k, v in sorted(groups.items())}
    return result
