"""Speed of diffusers' step caches on text-to-video: the denoising loop with each cache against none.

The bundled ShapesWorld model, the test split's first prompts (batch 8 by default), 20 steps, guidance 5: the
settings of ``python -m training.shapesworld.evaluate --tasks text_to_video --cache SPEC``, whose quality numbers
go with these. One thread, the caches interleaved round by round and the fastest round kept, so other work on a shared
machine moves every row alike; the time is this process's CPU time. Prints one JSON line per spec with the share
of block forwards computed and ``"ratio"`` (no cache / this cache) last.

    python benchmarks/step_cache.py
    python benchmarks/step_cache.py --specs none first_block:0.2 taylorseer:2 --rounds 5
"""

import argparse
import functools
import json
import platform
import time

import torch

from univigu.models.transformer_univigu import UniViGUBlock
from univigu.pipeline_univigu import UniViGUPipeline

SPECS = [
    "none",
    "first_block:0.1",
    "first_block:0.2",
    "taylorseer:2",
    "taylorseer:4",
    "sea:0.25",
    "sea:0.5",
    "pab:2",
    "pab:4",
]


def measure(
    specs: list[str], model: str = "assets/univigu-shapesworld", prompts: int = 8, steps: int = 20, rounds: int = 3
) -> list[dict]:
    from training.shapesworld import detailed_caption, iter_split

    calls = {"n": 0}
    forward = UniViGUBlock.forward

    @functools.wraps(forward)  # counted before any cache hook wraps the blocks
    def counted(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    UniViGUBlock.forward = counted
    try:
        pipe = UniViGUPipeline.from_pretrained(model)
        captions = [detailed_caption(scene) for _, scene in iter_split("test", prompts)]
        cond = pipe.embed_texts(captions, "cpu", torch.float32)
        empty = pipe.embed_texts([""], "cpu", torch.float32)
        text_ids = pipe.text_id_rows(captions)
        best = {spec: float("inf") for spec in specs}
        computed = {}
        for _ in range(rounds):
            for spec in specs:
                pipe.set_step_cache(spec)
                calls["n"] = 0
                start = time.process_time()
                pipe(  # the prompts encoded before the clock starts; the latents not decoded
                    captions,
                    prompt_embeds=cond,
                    negative_prompt_embeds=empty,
                    text_ids=text_ids,
                    num_inference_steps=steps,
                    guidance_scale=5.0,
                    generator=torch.Generator().manual_seed(0),
                    output_type="latent",
                )
                best[spec] = min(best[spec], time.process_time() - start)
                computed[spec] = calls["n"] / (steps * len(pipe.transformer.blocks))
    finally:
        UniViGUBlock.forward = forward
    base = best.get("none", best[specs[0]])
    return [
        {
            "spec": spec,
            "prompts": prompts,
            "steps": steps,
            "blocks_computed": round(computed[spec], 3),
            "cpu_s": round(best[spec], 3),
            "machine": f"{platform.machine()} CPU, 1 thread",
            "ratio": round(base / best[spec], 2),
        }
        for spec in specs
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=SPECS, help="NAME[:VALUE] (univigu.caching); 'none' first")
    parser.add_argument("--model", default="assets/univigu-shapesworld")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for row in measure(args.specs, args.model, args.prompts, args.steps, args.rounds):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
