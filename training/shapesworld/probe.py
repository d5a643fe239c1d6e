"""Which caption words does a generator read? Swap one attribute of the caption and watch the video loss.

For clips of a latent cache, a base generator's (``WanTransformer3DModel``) video flow-matching loss is measured
at fixed noise levels, once with each clip's detailed caption and once with the caption whose main object's
colour, shape, motion, size or cell, or whose background, is replaced by another value — same clips, same noise.
A generator that reads a word does worse when it is swapped; one that ignores the word scores the same. The
detector's reading of generated clips says *that* an attribute is not followed; this says whether the text
reaches the generator at all, per attribute and noise level, in a minute::

    python -m training.shapesworld.probe --transformer runs/shapesworld/base/final --run runs/shapesworld
"""

import argparse
import dataclasses
import json
import random
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from univigu.flows import VideoFlow, to_timestep

from ..components import load_components
from ..data import LatentCache, embed_texts, read_metadata
from ..sampling import wan_velocity
from .spec import BACKGROUNDS, CELLS, COLORS, MOTIONS, SHAPES, SIZES
from .text import ParsedCaption, format_caption, parse_caption

CHOICES = {
    "color": list(COLORS),
    "shape": list(SHAPES),
    "motion": list(MOTIONS),
    "size": list(SIZES),
    "cell": list(CELLS),
    "background": list(BACKGROUNDS),
}
SIGMAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def swap(caption: ParsedCaption, attribute: str, rng: random.Random) -> ParsedCaption:
    """The caption with one attribute of the main object (or the background) set to another value; colour and
    shape also avoid the second object's, which the world never repeats."""
    taken = {getattr(caption, attribute)}
    if caption.second is not None and attribute in ("color", "shape"):
        taken.add(getattr(caption.second, attribute))
    return dataclasses.replace(caption, **{attribute: rng.choice([v for v in CHOICES[attribute] if v not in taken])})


@torch.no_grad()
def word_sensitivity(
    wan, latents: torch.Tensor, conds: dict[str, torch.Tensor], sigmas=SIGMAS, seed: int = 0
) -> dict[str, dict[float, float]]:
    """Video loss per condition and noise level: ``{name: {sigma: loss}}`` for latents [B, C, f, h, w] and
    conditions ``{name: [B, L, D]}``; every condition sees the same noise."""
    gen = torch.Generator().manual_seed(seed)
    losses = {name: {} for name in conds}
    for sigma in sigmas:
        noise = torch.randn(latents.shape, generator=gen)
        level = torch.full((latents.shape[0],), float(sigma))
        x_t = VideoFlow.add_noise(latents, noise, level)
        target = VideoFlow.target(latents, noise)
        for name, cond in conds.items():
            velocity = wan_velocity(wan, x_t, to_timestep(level), cond)
            losses[name][sigma] = VideoFlow.loss(velocity, target).mean().item()
    return losses


def probe(transformer: str, cache: str, components: str, data: str, n: int = 64, seed: int = 0) -> dict:
    """Loss with the true caption and each attribute swapped, on ``n`` cached clips; relative changes in %."""
    tokenizer, text_encoder, _ = load_components(components)
    wan = WanTransformer3DModel.from_pretrained(transformer).eval()
    batch = LatentCache(cache).batch(n, seed, 0)
    rows = read_metadata(data)
    captions = [parse_caption(rows[i]["caption"]) for i in batch["rows"].tolist()]
    if any(c is None for c in captions):
        raise ValueError(f"{data}: every caption must follow the ShapesWorld grammar")
    rng = random.Random(seed)
    texts = {"caption": [format_caption(c) for c in captions]}
    texts |= {attr: [format_caption(swap(c, attr, rng)) for c in captions] for attr in CHOICES}
    conds = {name: embed_texts(tokenizer, text_encoder, t) for name, t in texts.items()}
    losses = word_sensitivity(wan, batch["latents"], conds, seed=seed)
    true = losses["caption"]
    change = {attr: {s: 100 * (losses[attr][s] / true[s] - 1) for s in SIGMAS} for attr in CHOICES}
    return {"transformer": transformer, "n": n, "loss": true, "swapped_change_percent": change}


def table(result: dict) -> str:
    head = "| swapped | " + " | ".join(f"σ = {s}" for s in SIGMAS) + " |"
    lines = [head, "|---" * (len(SIGMAS) + 1) + "|"]
    lines.append("| none: loss | " + " | ".join(f"{result['loss'][s]:.3f}" for s in SIGMAS) + " |")
    for attr, change in result["swapped_change_percent"].items():
        lines.append(f"| {attr} | " + " | ".join(f"{change[s]:+.1f}%" for s in SIGMAS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Which caption words does a base generator read?")
    parser.add_argument("--transformer", required=True, help="a base generator (WanTransformer3DModel) folder")
    parser.add_argument("--run", help="a recipe run folder: cache/, components/ and data/train/ inside")
    parser.add_argument("--cache", help="latent cache (default: RUN/cache/train.safetensors)")
    parser.add_argument("--components", help="tokenizer + text encoder (default: RUN/components)")
    parser.add_argument("--data", help="dataset with metadata.jsonl (default: RUN/data/train)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    run = Path(args.run) if args.run else None
    paths = {
        "cache": args.cache or (run and run / "cache" / "train.safetensors"),
        "components": args.components or (run and run / "components"),
        "data": args.data or (run and run / "data" / "train"),
    }
    missing = [k for k, v in paths.items() if v is None]
    if missing:
        parser.error(f"give --run or --{' --'.join(missing)}")
    torch.set_num_threads(2)
    try:
        result = probe(args.transformer, *(str(paths[k]) for k in ("cache", "components", "data")), args.n, args.seed)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
