"""The studio's example clips and prompts (``assets/examples/``).

``python -m univigu.studio.examples`` renders a few ShapesWorld test-split clips with
``training.shapesworld`` when that package is importable, else simple synthetic clips with numpy, and
writes them as browser-playable mp4 files with an ``examples.json`` index (file, prompt, caption).
"""

import argparse
import json
import os

import numpy as np

from ..video_io import write_video

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES_DIR = os.path.join(REPO_ROOT, "assets", "examples")
INDEX = "examples.json"
FALLBACK_PROMPTS = ["a red circle moves right", "a blue square moves down", "a green triangle stays still"]


def _shapesworld_examples(n: int) -> list[tuple[str, np.ndarray, str, str]]:
    from training.shapesworld import brief_prompt, clip_seed, detailed_caption, render, scene_for_seed

    out = []
    for index in range(n):
        scene = scene_for_seed(clip_seed("test", index), "test")
        out.append(
            (f"shapesworld-test-{index:03d}", render(scene), brief_prompt(scene), detailed_caption(scene))
        )
    return out


def synthetic_clip(
    color=(220, 40, 40), motion=(1, 0), shape="square", frames=17, size=64, side=16
) -> np.ndarray:
    """A coloured square or circle sliding over a gray background: uint8 [frames, size, size, 3]."""
    clip = np.full((frames, size, size, 3), 128, dtype=np.uint8)
    yy, xx = np.mgrid[:side, :side]
    mask = (
        (xx - side / 2 + 0.5) ** 2 + (yy - side / 2 + 0.5) ** 2 <= (side / 2) ** 2
        if shape == "circle"
        else None
    )
    for t in range(frames):
        x = int(np.clip(size / 2 - side / 2 + 2 * motion[0] * (t - frames // 2), 0, size - side))
        y = int(np.clip(size / 2 - side / 2 + 2 * motion[1] * (t - frames // 2), 0, size - side))
        patch = clip[t, y : y + side, x : x + side]
        if mask is None:
            patch[:] = color
        else:
            patch[mask] = color
    return clip


def _synthetic_examples() -> list[tuple[str, np.ndarray, str, str]]:
    specs = [
        ((220, 40, 40), (1, 0), "circle"),
        ((50, 90, 230), (0, 1), "square"),
        ((40, 180, 70), (0, 0), "square"),
    ]
    out = []
    for k, ((color, motion, shape), prompt) in enumerate(zip(specs, FALLBACK_PROMPTS)):
        out.append((f"synthetic-{k:03d}", synthetic_clip(color, motion, shape), prompt, prompt + "."))
    return out


def make_examples(out_dir: str = EXAMPLES_DIR, n: int = 4, source: str = "auto") -> list[dict]:
    """Write example clips (mp4) and ``examples.json``; returns the index entries."""
    if source not in ("auto", "shapesworld", "synthetic"):
        raise ValueError(f"unknown source {source!r}")
    clips = None
    if source in ("auto", "shapesworld"):
        try:
            clips = _shapesworld_examples(n)
        except ImportError:
            if source == "shapesworld":
                raise
    if clips is None:
        clips = _synthetic_examples()
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for name, frames, prompt, caption in clips:
        path = write_video(os.path.join(out_dir, f"{name}.mp4"), frames, fps=8)
        os.chmod(path, 0o644)  # write_video goes through mkstemp (0600)
        entries.append({"file": f"{name}.mp4", "prompt": prompt, "caption": caption})
    with open(os.path.join(out_dir, INDEX), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    return entries


def load_examples(directory: str = EXAMPLES_DIR) -> list[dict]:
    """Index entries whose clips exist, with absolute ``path``; [] when there are none."""
    try:
        with open(os.path.join(directory, INDEX)) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for entry in entries:
        path = os.path.join(directory, str(entry.get("file", "")))
        if os.path.isfile(path):
            out.append({**entry, "path": path})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=EXAMPLES_DIR)
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--source", default="auto", choices=["auto", "shapesworld", "synthetic"])
    args = parser.parse_args(argv)
    for entry in make_examples(args.out, args.n, args.source):
        print(entry["file"], "-", entry["prompt"])


if __name__ == "__main__":
    main()
