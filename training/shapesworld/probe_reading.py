"""Which object does the captioner read an attribute from? Tell it the rest of the caption and see.

For the two-object clips of a split, the clip is held clean and the scene's true detailed caption is
written into the text stream with the words of one of the main object's attributes masked (where the two
objects differ in it, and their words for it are as many tokens, so the mask does not give the answer's
length away); one forward at that noise level, greedy. Each prediction is the main object's value, the
second object's, or neither's. The captioner is told everything else -- the main object's other attributes
included -- so the decoding order plays no part: "second's" is a binding error, "neither's" a misreading.
Told the second object's words too, it can answer by elimination (the objects always differ in colour and
shape); ``--hide-second`` masks everything after the main object's clause and the background (the second
clause, the end token and the pads), so only the main object's other words say which object is meant::

    python -m training.shapesworld.probe_reading --model assets/univigu-shapesworld --split test --n 200 [--hide-second]
"""

import argparse
import dataclasses
import json

import torch

from univigu.flows import to_timestep

from .render import render
from .sample import iter_split
from .text import detailed_caption, format_caption, parse_caption

ATTRIBUTES = ("color", "shape", "size", "cell", "motion")


def masked_positions(pipe, scene, attribute: str) -> tuple[list[int], list[int], list[int]] | None:
    """(positions, the main object's ids there, the second object's ids there) of ``attribute``'s words in
    the scene's caption; None where the objects share the value or their words differ in token count."""
    caption = parse_caption(detailed_caption(scene))
    if caption is None or caption.second is None:
        return None
    main, second = getattr(caption.main, attribute), getattr(caption.second, attribute)
    if main == second:
        return None
    swapped = dataclasses.replace(caption, **{attribute: second})
    ids, other = pipe.text_ids(format_caption(caption)), pipe.text_ids(format_caption(swapped))
    if len(ids) != len(other):
        return None
    positions = [i for i, (a, b) in enumerate(zip(ids, other)) if a != b]
    return positions, [ids[i] for i in positions], [other[i] for i in positions]


def second_clause_start(pipe, scene) -> int:
    """The first text position after the main object's clause and the background (where the caption of the
    same scene without its second object would end)."""
    ids = pipe.text_ids(detailed_caption(scene))
    alone = pipe.text_ids(detailed_caption(dataclasses.replace(scene, second=None)))
    return next(i for i, (a, b) in enumerate(zip(ids, alone)) if a != b)


@torch.no_grad()
def read_attribute(pipe, latents: torch.Tensor, scenes: list, attribute: str, hide_second: bool = False) -> dict:
    """Counts of predictions that are the main object's value, the second's, or neither's, for clips
    ``latents`` (normalised, [B, C, f, h, w]) of two-object ``scenes``; ``hide_second``: the text after the
    main object's clause and the background masked too."""
    transformer = pipe.transformer
    rows = [(k, masked_positions(pipe, s, attribute)) for k, s in enumerate(scenes)]
    rows = [(k, found) for k, found in rows if found is not None]
    counts = {"n": len(rows), "main": 0, "second": 0, "neither": 0}
    if not rows:
        return counts
    index = torch.tensor([k for k, _ in rows])
    ids = pipe.text_id_rows([detailed_caption(scenes[k]) for k, _ in rows])
    for row, (k, (positions, _, _)) in enumerate(rows):
        ids[row, positions] = transformer.config.vocab_size  # the mask id
        if hide_second:
            ids[row, second_clause_start(pipe, scenes[k]) :] = transformer.config.vocab_size
    sigma = (ids == transformer.config.vocab_size).float().mean(1)  # the path's masked fraction
    cond = pipe.encode_prompt([""], "cpu", torch.float32).expand(len(rows), -1, -1)
    out = transformer(
        video_latents=latents[index],
        video_timestep=to_timestep(torch.zeros(len(rows))),
        encoder_hidden_states=cond,
        text_timestep=to_timestep(sigma),
        text_attention_mask=transformer.text_key_mask(ids),
        text_tokens=ids,
    )
    predicted = out.text_logits[..., : transformer.config.vocab_size].argmax(-1)
    for row, (_, (positions, main_ids, second_ids)) in enumerate(rows):
        guess = predicted[row, positions].tolist()
        counts["main" if guess == main_ids else "second" if guess == second_ids else "neither"] += 1
    return counts


def probe(model_dir: str, split: str = "test", n: int = 200, batch: int = 50, hide_second: bool = False) -> dict:
    """Per attribute: how many two-object clips of the split's first ``n`` it was probed on, and the fraction
    of predictions naming the main object's value, the second's, or neither's."""
    from ..evaluate import Evaluator

    evaluator = Evaluator(model_dir, batch=batch)
    scenes = [s for _, s in iter_split(split, n) if s.second is not None]
    totals = {a: {"n": 0, "main": 0, "second": 0, "neither": 0} for a in ATTRIBUTES}
    for k in range(0, len(scenes), batch):
        chunk = scenes[k : k + batch]
        latents = evaluator.encode([render(s) for s in chunk])
        for attribute in ATTRIBUTES:
            for key, value in read_attribute(evaluator.pipe, latents, chunk, attribute, hide_second).items():
                totals[attribute][key] += value
    return {
        a: {"n": t["n"], **{k: round(t[k] / max(t["n"], 1), 3) for k in ("main", "second", "neither")}}
        for a, t in totals.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="pipeline folder")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "compositional"])
    parser.add_argument("--n", type=int, default=200, help="clips of the split (its two-object ones are probed)")
    parser.add_argument("--hide-second", action="store_true", help="mask the second object's clause too")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = probe(args.model, args.split, args.n, hide_second=args.hide_second)
    print("| attribute | clips | main object's | second object's | neither's |\n|---|---|---|---|---|")
    for attribute, r in result.items():
        print(f"| {attribute} | {r['n']} | {r['main']:.3f} | {r['second']:.3f} | {r['neither']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
