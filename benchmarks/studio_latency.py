"""What a studio visitor waits for: one text-to-video and one caption on the bundled model, on this machine.

The model card's bar for the bundled model: a 20-step text-to-video (guidance, decode to frames included) and a
40-step caption with the default clip cache (``univigu.settings.CAPTION_VIDEO_CACHE_INTERVAL``; the clip's VAE
encode included) each within 5 s on a 2-core CPU. Prints one JSON line per task: the median wall time of
``--repeats`` runs after one warm-up, and the machine.

    python benchmarks/studio_latency.py [--model DIR] [--repeats 5] [--threads 2]
"""

import argparse
import json
import platform
import statistics
import time

import torch

from univigu.loading import load_pipeline
from univigu.offload import Placement
from univigu.settings import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL

PROMPT = "a red circle moves right"
T2V_STEPS = 20


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up: first-call allocations and kernel choices
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model: str | None = None, repeats: int = 5, t2v_steps: int = T2V_STEPS, caption_steps: int = CAPTION_STEPS):
    """Rows ``{"task", "steps", "seconds", ...}`` for text-to-video and captioning (seed 0, the library's defaults)."""
    pipe = load_pipeline(model, Placement(device="cpu"))
    pipe.set_progress_bar_config(disable=True)
    clip = pipe.text_to_video(PROMPT, num_inference_steps=t2v_steps, seed=0).frames
    machine = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    t2v = _median_seconds(lambda: pipe.text_to_video(PROMPT, num_inference_steps=t2v_steps, seed=0), repeats)
    caption = _median_seconds(lambda: pipe.caption(clip, num_inference_steps=caption_steps, seed=0), repeats)
    return [
        {"task": "text_to_video", "steps": t2v_steps, "seconds": round(t2v, 3), **machine},
        {
            "task": "caption",
            "steps": caption_steps,
            "video_cache_interval": CAPTION_VIDEO_CACHE_INTERVAL,
            "seconds": round(caption, 3),
            **machine,
        },
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or hub id (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the studio's on a 2-core CPU)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    for row in measure(args.model, args.repeats):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
