"""Fingerprints of every task's outputs on the bundled model for fixed seeds: frames, captions and each step's
trajectory, as sha256 prefixes. Run it before and after a change that must not change outputs, and diff the two.

    python scripts/output_fingerprints.py before.json   # then change, and:
    python scripts/output_fingerprints.py after.json && diff before.json after.json
"""

import hashlib
import json
import sys

import numpy as np
import torch

from training.shapesworld.render import render
from training.shapesworld.sample import iter_split
from univigu.loading import load_pipeline


def digest(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def fingerprint(out) -> dict:
    row = {}
    for name, value in vars(out).items():
        if name == "trajectory" and value:  # every field of every step (fields added later leave old ones as they were)
            row[name] = {field: digest([digest(getattr(s, field)) for s in value]) for field in vars(value[0])}
        elif isinstance(value, (torch.Tensor, np.ndarray)):
            row[name] = digest(value)
        elif value is not None:
            row[name] = value
    return row


def main(path: str) -> None:
    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    clip = render(next(iter(iter_split("test", 1)))[1])
    runs = {
        "t2v": dict(prompt="a purple circle moves right", num_inference_steps=8, seed=3, output_type="uint8"),
        "t2v_batch": dict(
            prompt=["a red square stays still", "a blue triangle moves up"], num_inference_steps=6, seed=4
        ),
        "caption": dict(video=clip, num_inference_steps=12, seed=5),
        "caption_k1": dict(video=clip, num_inference_steps=8, seed=6, video_cache_interval=1),
        "joint": dict(prompt="a green circle moves down", generate_text=True, num_inference_steps=8, seed=7),
    }
    result = {
        name: fingerprint(pipe(**kwargs, return_trajectory=not isinstance(kwargs.get("prompt"), list)))
        for name, kwargs in runs.items()
    }
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
