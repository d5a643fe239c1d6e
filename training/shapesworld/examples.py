"""The studio's example clips (``assets/examples/``): a few ShapesWorld test-split clips with their prompts.

    python -m training.shapesworld.examples [--out assets/examples] [-n 4]

writes each clip as a browser-playable mp4 and an ``examples.json`` index (file, prompt, caption), the files
:func:`univigu.studio.examples.load_examples` reads.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np

from univigu.studio.examples import INDEX
from univigu.video_io import write_video

from .render import render
from .sample import clip_seed, scene_for_seed
from .spec import FPS
from .text import brief_prompt, detailed_caption

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"


def _shapesworld_examples(n: int) -> list[tuple[str, np.ndarray, str, str]]:
    out = []
    for index in range(n):
        scene = scene_for_seed(clip_seed("test", index), "test")
        out.append((f"shapesworld-test-{index:03d}", render(scene), brief_prompt(scene), detailed_caption(scene)))
    return out


def make_examples(out_dir: str | os.PathLike = EXAMPLES_DIR, n: int = 4) -> list[dict]:
    """Write ``n`` example clips (mp4) and ``examples.json`` to ``out_dir``; returns the index entries."""
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for name, frames, prompt, caption in _shapesworld_examples(n):
        path = write_video(os.path.join(out_dir, f"{name}.mp4"), frames, fps=FPS)
        os.chmod(path, 0o644)  # write_video goes through mkstemp (0600)
        entries.append({"file": f"{name}.mp4", "prompt": prompt, "caption": caption})
    with open(os.path.join(out_dir, INDEX), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(EXAMPLES_DIR))
    parser.add_argument("-n", type=int, default=4)
    args = parser.parse_args(argv)
    for entry in make_examples(args.out, args.n):
        print(entry["file"], "-", entry["prompt"])


if __name__ == "__main__":
    main()
