"""Where a Stage 2 training step's time goes on the bundled model: forward, backward, clipping + AdamW.

The recipe trains as two processes of one thread, each a batch of 4 clips (17x64x64 -> latents 8x5x16x16,
80 video tokens + 32 text tokens). This times one such process's step on a batch of those shapes, with
the uni-flow loss as ``training/configs/refine.yaml`` draws it, in fp32 (the recipe), under bf16 autocast,
and (``--compile``, about a minute of compilation) with ``torch.compile``. Prints one JSON line per mode,
milliseconds per step (medians).

    python benchmarks/train_step.py [--compile] [--threads 1] [--steps 60]
"""

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from univigu import UniViGUTransformer
from univigu.flows import UniFlowLoss

MODEL = Path(__file__).resolve().parent.parent / "assets" / "univigu-shapesworld" / "transformer"


def _batch(transformer, size: int, generator: torch.Generator) -> dict:
    config = transformer.config
    return {
        "video_latents": torch.randn(size, config.in_channels, 5, 16, 16, generator=generator),
        "text_ids": torch.randint(1, config.vocab_size, (size, config.max_text_len), generator=generator),
        "encoder_hidden_states": torch.randn(size, 32, config.text_dim, generator=generator),
    }


def measure(mode: str, steps: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = UniViGUTransformer.from_pretrained(MODEL).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loss_fn = UniFlowLoss(video_shift=6.0, video_clean_prob=0.4, text_clean_prob=0.3)
    forward = torch.compile(model) if mode == "compile" else model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else nullcontext()
    generator = torch.Generator().manual_seed(0)
    phases = {"forward": [], "backward": [], "optimizer": []}
    started = time.perf_counter()
    for step in range(steps + 5):  # the first 5 are warm-up (and compilation)
        batch = _batch(model, batch_size, generator)
        t0 = time.perf_counter()
        with autocast:
            loss = loss_fn(forward, **batch, generator=generator).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if step == 4:
            warmup = t3 - started
        if step >= 5:
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[name].append(seconds)
    row = {"mode": mode, **{f"{k}_ms": round(1000 * statistics.median(v), 1) for k, v in phases.items()}}
    row["step_ms"] = round(sum(row[f"{k}_ms"] for k in phases), 1)
    row["warmup_s"] = round(warmup, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute more)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the recipe: 1 per process)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    for mode in ["fp32", "bf16"] + (["compile"] if args.compile else []):
        print(json.dumps({**measure(mode, args.steps, args.batch_size), "batch": args.batch_size, **machine}))


if __name__ == "__main__":
    main()
