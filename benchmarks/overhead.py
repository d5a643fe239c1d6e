"""Cost of Uni-ViGU's text stream: a UniViGU text-to-video forward over a plain Wan forward, same weights.

The text/video token ratio is 480p Wan's (256 text tokens per 32760 video tokens). On a CPU the model
is scaled down so one run takes about a minute; with a GPU it also runs Wan2.1-1.3B's architecture.
Prints one JSON line per configuration, ``"ratio"`` (UniViGU time / Wan time, medians) last.

    python benchmarks/overhead.py            # CPU size (and 1.3B when CUDA is present)
    python benchmarks/overhead.py --size 1.3b --dtype bfloat16
"""

import argparse
import json
import platform
import statistics
import time

import torch
from diffusers import WanTransformer3DModel

from univigu import UniViGUTransformer

TEXT_PER_VIDEO = 256 / 32760  # Wan2.1 480p: 81x480x832 -> 21x30x52 video tokens; 256 text tokens

SIZES = {
    # name: (Wan config overrides, latent grid [F, H, W])
    "cpu": (dict(num_attention_heads=4, attention_head_dim=64, ffn_dim=1024, num_layers=4, text_dim=256), (4, 64, 64)),
    "1.3b": (
        dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096),
        (21, 60, 104),
    ),
}


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def measure(size: str, device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    overrides, (f, h, w) = SIZES[size]
    torch.manual_seed(0)
    wan = WanTransformer3DModel(in_channels=16, out_channels=16, **overrides).to(device, dtype).eval()
    uni = UniViGUTransformer.from_wan(wan, vocab_size=32000, text_source="mask").to(device, dtype).eval()
    num_video = f * (h // 2) * (w // 2)
    num_text = max(1, round(num_video * TEXT_PER_VIDEO))
    latents = torch.randn(1, 16, f, h, w, device=device, dtype=dtype)
    cond = torch.randn(1, 512, overrides["text_dim"], device=device, dtype=dtype)
    timestep = torch.tensor([500.0], device=device)
    tokens = torch.randint(1, 32000, (1, num_text), device=device)

    run_wan = lambda: wan(latents, timestep, cond)  # noqa: E731
    run_uni = lambda: uni(  # noqa: E731
        video_latents=latents,
        video_timestep=timestep,
        encoder_hidden_states=cond,
        text_timestep=torch.zeros(1, device=device),
        text_tokens=tokens,
    )
    for _ in range(2):  # warm-up: allocator, kernels, caches
        run_wan(), run_uni()
    wan_times, uni_times = [], []
    for _ in range(repeats):  # interleaved, so drift hits both alike
        wan_times.append(_timed(run_wan, device))
        uni_times.append(_timed(run_uni, device))
    wan_s, uni_s = statistics.median(wan_times), statistics.median(uni_times)
    return {
        "size": size,
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": str(dtype).replace("torch.", ""),
        "video_tokens": num_video,
        "text_tokens": num_text,
        "repeats": repeats,
        "wan_ms": round(wan_s * 1000, 2),
        "univigu_ms": round(uni_s * 1000, 2),
        "ratio": round(uni_s / wan_s, 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["auto", *SIZES], default="auto")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    sizes = (["cpu", "1.3b"] if cuda else ["cpu"]) if args.size == "auto" else [args.size]
    for size in sizes:
        device = torch.device("cuda" if cuda else "cpu")
        if size == "1.3b" and not cuda:
            raise SystemExit("the 1.3B size needs a GPU")
        dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
        repeats = args.repeats or (20 if device.type == "cuda" else 15)
        print(json.dumps(measure(size, device, dtype, repeats)), flush=True)


if __name__ == "__main__":
    main()
