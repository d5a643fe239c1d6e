"""What one caption costs: the full sequence every step against the cached clip (``video_cache_interval``).

A caption holds the clip clean and denoises the text. With ``video_cache_interval=k`` the clip's per-block
keys and values are computed every k steps and the steps between run the text tokens only, so with thousands
of video tokens against tens of text positions most steps cost a small fraction of a full one. Random weights
(cost does not depend on them), the same for every row; the prompt slot is a random [1, 512, text_dim]
embedding (the text encoder runs once per caption either way and is left out); the VAE encode of the clip is
timed apart, once.

Rows (one JSON line each, ``"ratio"`` last):

- ``cached``: 40 steps, the full sequence every step (k = 1) / 40 steps at the default k; the model's own text
  positions (<= 64 on the CPU size).
- ``release``: the authors' release's settings (100 steps, 256 text positions, the full sequence every step)
  / ours (40 steps at the default k) at the same 256 text positions: what a caption costs in each.

    python benchmarks/caption_cost.py                 # CPU size (and Wan2.1-1.3B 480p x 81 bf16 with CUDA)
    python benchmarks/caption_cost.py --size 1.3b --dtype bfloat16
"""

import argparse
import json
import platform
import time

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler

from univigu import UniViGUPipeline, UniViGUTransformer
from univigu.settings import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL
from univigu.tiny import TINY_WORDS, tiny_text_encoder, tiny_vae
from univigu.tokenization import build_word_tokenizer

RELEASE_STEPS, RELEASE_TEXT = 100, 256  # the authors' release: 100 caption steps over 256 text positions

SIZES = {
    # name: transformer config, clip (frames, height, width), text positions, vocabulary, VAE
    "toy": dict(
        model=dict(num_attention_heads=2, attention_head_dim=32, ffn_dim=128, num_layers=2, text_dim=32),
        clip=(9, 32, 56),
        text=8,
        vocab=None,
        vae="tiny",
    ),
    "cpu": dict(
        model=dict(num_attention_heads=4, attention_head_dim=64, ffn_dim=1024, num_layers=4, text_dim=256),
        clip=(41, 120, 208),  # tiny VAE (4x, 4x) -> 11 x 30 x 52 latents -> 4,290 video tokens, 480p's 15:26
        text=32,
        vocab=None,
        vae="tiny",
    ),
    "1.3b": dict(
        model=dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096),
        clip=(81, 480, 832),  # Wan's VAE (4x, 8x) -> 21 x 60 x 104 latents -> 32,760 video tokens
        text=256,
        vocab=256384,  # the Wan tokenizer's, as in the release: the text embedding and head at full size
        vae="wan",
    ),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def build(size: str, device: torch.device, dtype: torch.dtype) -> UniViGUPipeline:
    spec = SIZES[size]
    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(TINY_WORDS, model_max_length=spec["text"])
    vae = tiny_vae(base_dim=8, z_dim=16) if spec["vae"] == "tiny" else AutoencoderKLWan()
    with torch.device(device):  # initialise in place: the 1.3B model is slow to build on a CPU
        transformer = UniViGUTransformer(
            patch_size=(1, 2, 2),
            in_channels=16,
            out_channels=16,
            **spec["model"],
            vocab_size=spec["vocab"] or len(tokenizer),
            text_source="mask",
            pad_token_id=tokenizer.pad_token_id,
            max_text_len=spec["text"],
        )
    frames, height, width = spec["clip"]
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_text_encoder(len(tokenizer)),
        vae=vae,
        transformer=transformer.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        default_num_frames=frames,
        default_height=height,
        default_width=width,
    )
    pipe.to(device)
    if dtype != torch.float32:  # weights only: the loop computes in the transformer's dtype
        pipe.transformer.to(dtype)
        pipe.vae.to(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def measure(
    size: str = "cpu",
    device: str = "cpu",
    dtype: str = "float32",
    interval: int | None = None,
    steps: int = CAPTION_STEPS,
    release_steps: int = RELEASE_STEPS,
    release_text: int = RELEASE_TEXT,
) -> list[dict]:
    """The two rows for one size, as dicts (``"ratio"`` last)."""
    device, dtype_ = torch.device(device), getattr(torch, dtype)
    interval = interval or CAPTION_VIDEO_CACHE_INTERVAL
    pipe = build(size, device, dtype_)
    spec = SIZES[size]
    frames, height, width = spec["clip"]
    clip = torch.randint(0, 256, (frames, height, width, 3), generator=torch.Generator().manual_seed(0)).byte()
    vae_s, latents = _timed(lambda: pipe.encode_video(clip.numpy()), device)
    latents = latents.to(device, dtype_)
    cond = torch.randn(1, 512, spec["model"]["text_dim"], generator=torch.Generator().manual_seed(1)).to(device, dtype_)
    num_video = latents.shape[2] * (latents.shape[3] // 2) * (latents.shape[4] // 2)

    def caption(steps: int, k: int, text: int) -> float:
        pipe.transformer.register_to_config(max_text_len=text)  # the text positions the loop denoises
        seconds, _ = _timed(
            lambda: pipe(
                prompt_embeds=cond,
                video_latents=latents,
                num_inference_steps=steps,
                video_cache_interval=k,
                generator=torch.Generator().manual_seed(0),
            ),
            device,
        )
        return seconds

    caption(2, 2, spec["text"])  # warm up kernels and the allocator
    common = {
        "size": size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "dtype": dtype,
        "blocks": spec["model"]["num_layers"],
        "width": spec["model"]["num_attention_heads"] * spec["model"]["attention_head_dim"],
        "clip": list(spec["clip"]),
        "video_tokens": num_video,
        "vae_encode_s": round(vae_s, 3),
    }
    full = caption(steps, 1, spec["text"])
    cached = caption(steps, interval, spec["text"])
    release = caption(release_steps, 1, release_text)
    ours = caption(steps, interval, release_text)
    return [
        {
            **common,
            "row": "cached",
            "text_positions": spec["text"],
            "steps": steps,
            "video_cache_interval": interval,
            "full_s": round(full, 3),
            "cached_s": round(cached, 3),
            "ratio": round(full / cached, 2),
        },
        {
            **common,
            "row": "release",
            "text_positions": release_text,
            "release": f"{release_steps} steps, full sequence every step",
            "release_s": round(release, 3),
            "ours": f"{steps} steps, video_cache_interval={interval}",
            "ours_s": round(ours, 3),
            "ratio": round(release / ours, 2),
        },
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="default: cpu, and 1.3b with CUDA")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: fp32 CPU, bf16 GPU")
    parser.add_argument("--interval", type=int, default=None, help=f"default {CAPTION_VIDEO_CACHE_INTERVAL}")
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval < 1:
        parser.error(f"--interval must be >= 1, got {args.interval}")
    runs = [(args.size, "cuda" if args.size == "1.3b" else "cpu")] if args.size else [("cpu", "cpu")]
    if not args.size and torch.cuda.is_available():
        runs.append(("1.3b", "cuda"))
    for size, device in runs:
        if device == "cuda" and not torch.cuda.is_available():
            parser.error("the 1.3b size runs on a CUDA GPU; this machine has none")
        dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
        for row in measure(size, device, dtype, args.interval):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
