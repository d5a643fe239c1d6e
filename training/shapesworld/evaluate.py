"""The ShapesWorld benchmark for a trained pipeline: captioning, text-to-video and joint generation.

    python -m training.shapesworld.evaluate --model assets/univigu-shapesworld --split test --n 200 [--out results.json]
    python -m training.shapesworld.evaluate --model DIR --base-transformer runs/shapesworld/base/final --name base ...
    python -m training.shapesworld.evaluate --table a.json b.json ... > table.md
    python -m training.shapesworld.evaluate --model DIR --tasks captioning --text-order random   (one task)
    python -m training.shapesworld.evaluate --model DIR --tasks text_to_video --cache first_block:0.1   (a step cache)

Clips are rendered from the split's scenes (``training.shapesworld``) and scored with its scorer:

- captioning: the clip held clean, the text stream denoised from the mask source with an empty prompt in
  ``--caption-steps`` steps (default: the product's, ``univigu.settings.CAPTION_STEPS``);
  per-attribute accuracy against the scene and the exact-sentence rate (spec v1.1: where the clip's two objects
  never overlap, under whichever order of the caption's objects matches more).
- text-to-video: generate from the scene's detailed caption (prompt slot and text stream), read the clip
  with the detector, score the reading against the caption; ``attrs_one_object`` and ``attrs_two_objects``
  split the scores by the scene's object count.
- joint: generate clip and caption together from the brief prompt; score the caption's main object against
  the prompt, and the detector's reading of the clip against the generated caption.
- text_to_video_brief (only when named in ``--tasks``): generate from the brief prompt, as a user types it; the
  prompt's colour, shape and motion read from the drawn object that matches most of them.
- fill_in (only when named in ``--tasks``): asking the clip; each attribute's words blanked in the true caption,
  the rest held; the filled words' accuracy (``--fill-table`` sets it beside free captioning's).

With ``--base-transformer`` the plain Wan generator is evaluated on text-to-video only (it has no text
stream); the pipeline folder then only supplies its tokenizer, text encoder, VAE and scheduler.
Results keep each clip's scores (``per_clip``), from which ``--table`` gives every number its 95% interval over
the clips (``training.shapesworld.intervals``).
Sampling is batched (``UniViGUPipeline.__call__``; a base generator converted, its text stream all pads),
seeded per batch, greedy for text (the surest masked tokens revealed first: ``text_order="auto"``;
``--text-temperature`` samples each revealed word instead).
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from univigu.durable import replace_file
from univigu.latents import decode_frames, encode_frames
from univigu.settings import CAPTION_STEPS, check_video_cache_interval

from . import (
    DETAIL_ATTRS,
    PROMPT_ATTRS,
    aggregate,
    brief_prompt,
    describe,
    detailed_caption,
    detect,
    exact_rate,
    format_caption,
    is_exact,
    iter_split,
    object_counts,
    object_scores,
    parse_caption,
    parse_prompt,
    render,
    score_caption,
    score_detection,
    score_prompt_agreement,
)
from .intervals import wilson_interval
from .score import drawn_main, prompt_drawn, shapes_drawn
from .table import markdown_table

# The benchmark's protocol: text-to-video and joint generation in 20 steps, captioning in the product's steps on
# the whole sequence every step (exact: the benchmark scores the model, not the clip cache)
EVAL_STEPS = 20
EVAL_VIDEO_CACHE_INTERVAL = 1

TASKS = ("captioning", "text_to_video", "joint")
EXTRA_TASKS = ("fill_in", "text_to_video_brief")  # run when named in --tasks
# fill-in: each attribute's words blanked in the true caption, the rest given; the caption field it reads
FILL_ATTRS = (
    "color",
    "shape",
    "size",
    "motion",
    "cell",
    "background",
    *(f"second_{a}" for a in ("color", "shape", "size", "motion", "cell")),
)


def _field(caption, attr: str) -> str | None:
    """A caption's phrase for an attribute (``second_*``: the second object's); None if it has none."""
    if caption is None:
        return None
    if attr.startswith("second_"):
        return None if caption.second is None else getattr(caption.second, attr.removeprefix("second_"))
    return getattr(caption, attr)


def _blanked(caption, attr: str) -> str:
    """The caption as a fill-in template with ``attr``'s words blanked, one ``_`` per word."""
    blank = " ".join("_" for _ in _field(caption, attr).split())
    if attr.startswith("second_"):
        return format_caption(replace(caption, second=replace(caption.second, **{attr.removeprefix("second_"): blank})))
    return format_caption(replace(caption, **{attr: blank}))


def fill_in_table(results: list[dict]) -> str:
    """Markdown: per attribute, the filled word's accuracy beside free captioning's (run with ``--tasks captioning
    fill_in``), each with its 95% Wilson interval, for each results file."""
    head = "| attribute | " + " | ".join(f"{r['split']}: fill-in | {r['split']}: free caption" for r in results) + " |"
    lines = [head, "|---|" + "---|---|" * len(results)]

    def cell(rate: float, n: int) -> str:
        low, high = wilson_interval(round(rate * n), n)
        return f"{100 * rate:.1f} [{100 * low:.0f}–{100 * high:.0f}]"

    for attr in FILL_ATTRS:
        cells = []
        for r in results:
            scores = r["captioning"]["per_clip"]["scores"]  # a row per clip; second_* keys where there are two
            n = sum(attr in row for row in scores)
            cells += [cell(r["fill_in"]["attrs"][attr], n), cell(r["captioning"]["attrs"][attr], n)]
        lines.append(f"| {attr.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def _brief_grammar(text: str, scene) -> dict[str, int]:
    """Prompt attributes of a text read with the brief-prompt grammar (Stage 1 writes prompts)."""
    parsed = parse_prompt(text)
    want = parse_prompt(brief_prompt(scene))
    return {a: int(parsed is not None and getattr(parsed, a) == getattr(want, a)) for a in PROMPT_ATTRS}


BOUND = ("color", "motion", "cell")  # the attributes a caption must take from one object (see _binding)


def _binding(caption: str, scene) -> dict[str, int]:
    """A two-object clip's caption: are the main object's colour, motion and cell all those of the scene's
    main object, or all those of its second object (the caption describes one object, in either order)?"""
    parsed = parse_caption(caption)

    def same(obj) -> int:
        return int(parsed is not None and all(getattr(parsed.main, a) == getattr(obj, a) for a in BOUND))

    return {"main": same(scene.main), "second": same(scene.second)}


class Evaluator:
    def __init__(
        self,
        model_dir: str,
        base_transformer: str | None = None,
        steps: int = EVAL_STEPS,
        guidance: float = 5.0,
        batch: int = 50,
        seed: int = 0,
        text_order: str = "auto",
        caption_steps: int = CAPTION_STEPS,
        text_temperature: float = 0.0,
        video_cache_interval: int = EVAL_VIDEO_CACHE_INTERVAL,
        cache: str | None = None,
    ):
        from univigu.loading import load_pipeline
        from univigu.offload import Placement
        from univigu.pipeline_univigu import UniViGUPipeline

        # the step cache serves text-to-video and joint (univigu.caching); captioning runs without
        self.pipe = load_pipeline(model_dir, Placement(device="cpu", step_cache=cache))
        self.pipe.set_progress_bar_config(disable=True)  # thousands of short runs
        self.vae = self.pipe.vae
        self.transformer = self.pipe.transformer.eval()
        # a base generator (a Wan) is sampled as Stage 1 starts it: converted, its text stream all pads (masked
        # keys), which leaves Wan's video prediction as it is (tests: test_assemble_converts_the_base_generator)
        self.base = None
        if base_transformer:
            from ..components import load_transformer

            base = load_transformer(base_transformer, self.pipe.tokenizer, self.pipe.max_text_len).eval()
            self.base = UniViGUPipeline.from_pipe(self.pipe, transformer=base)
            self.base.set_progress_bar_config(disable=True)
        self.steps, self.guidance, self.batch, self.seed = steps, guidance, batch, seed
        self.text_order = text_order
        self.caption_steps = caption_steps
        if not text_temperature >= 0:
            raise ValueError(f"text_temperature must be >= 0 (0: greedy), got {text_temperature!r}")
        self.text_temperature = text_temperature
        check_video_cache_interval(video_cache_interval)
        self.video_cache_interval = video_cache_interval

    def _gen(self, chunk: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + chunk)

    @torch.no_grad()
    def encode(self, clips: list[np.ndarray]) -> torch.Tensor:
        return encode_frames(self.vae, np.stack(clips))

    # ---------------------------------------------------------------------------------------------
    def captioning(self, scenes) -> dict:
        captions = []
        for k in range(0, len(scenes), self.batch):
            out = self.pipe(
                video_latents=self.encode([render(s) for s in scenes[k : k + self.batch]]),
                num_inference_steps=self.caption_steps,
                text_order=self.text_order,
                text_temperature=self.text_temperature,
                generator=self._gen(k),
                video_cache_interval=self.video_cache_interval,
            )
            captions += out.text
        scores = [score_caption(c, s) for c, s in zip(captions, scenes)]
        briefs = [_brief_grammar(c, s) for c, s in zip(captions, scenes)]
        brief = aggregate(briefs)
        attrs = aggregate(scores)
        return {
            "attrs": attrs,
            "exact": exact_rate(captions, scenes),
            "parsed": _mean(parse_caption(c) is not None for c in captions),
            "prompt_attrs": _mean(attrs[a] for a in PROMPT_ATTRS),
            "detail_attrs": _mean(attrs[a] for a in DETAIL_ATTRS if a in attrs),
            "brief_grammar": brief,
            # where the captioner loses: one- vs two-object clips, and whether a two-object clip's caption
            # binds colour, motion and cell to one of the objects
            "attrs_one_object": aggregate(r for r, s in zip(scores, scenes) if s.second is None),
            "attrs_two_objects": aggregate(r for r, s in zip(scores, scenes) if s.second is not None),
            "two_object_binding": aggregate(_binding(c, s) for c, s in zip(captions, scenes) if s.second is not None),
            "objects": aggregate(object_scores(r) for r in scores),
            "examples": captions[:8],
            "captions": captions,  # all of them, to compare samplers caption by caption
            # each clip's scores, for the table's intervals (``_interval``)
            "per_clip": {
                "scores": scores,
                "exact": [int(is_exact(c, s)) for c, s in zip(captions, scenes)],
                "parsed": [int(parse_caption(c) is not None) for c in captions],
                "brief": briefs,
            },
        }

    def _generate(self, texts: list[str]) -> tuple[list, float, float]:
        """Text-to-video from each text (prompt slot and text stream) -> the detector's readings, and the
        denoising loop's wall and CPU seconds (no VAE, no detector)."""
        detections, sample_wall, sample_cpu = [], 0.0, 0.0
        for k in range(0, len(texts), self.batch):
            chunk = texts[k : k + self.batch]
            text_ids = None  # the texts, held in the text stream
            if self.base is not None:  # a base generator reads the prompt only: its text stream is all pads
                text_ids = torch.full((len(chunk), self.pipe.max_text_len), self.base.transformer.config.pad_token_id)
            wall, cpu = time.perf_counter(), time.process_time()
            latents = (self.base or self.pipe)(
                chunk,
                text_ids=text_ids,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=self._gen(k),
                output_type="latent",
            ).frames
            sample_wall += time.perf_counter() - wall
            sample_cpu += time.process_time() - cpu
            detections += [detect(clip) for clip in decode_frames(self.vae, latents).numpy()]
        return detections, sample_wall, sample_cpu

    def text_to_video(self, scenes) -> dict:
        captions = [detailed_caption(s) for s in scenes]
        detections, sample_wall, sample_cpu = self._generate(captions)
        scores = [score_detection(d, cap) for d, cap in zip(detections, captions)]
        drawn = [drawn_main(d, s.main.color) for d, s in zip(detections, scenes)]
        attrs = aggregate(scores)
        return {
            "attrs": attrs,
            "prompt_attrs": _mean(attrs[a] for a in PROMPT_ATTRS),
            "detail_attrs": _mean(attrs[a] for a in DETAIL_ATTRS if a in attrs),
            # where the generator loses: clips drawn from one-object captions vs two-object ones
            "attrs_one_object": aggregate(r for r, s in zip(scores, scenes) if s.second is None),
            "attrs_two_objects": aggregate(r for r, s in zip(scores, scenes) if s.second is not None),
            "objects": aggregate(object_scores(r) for r in scores),
            # what is drawn for each shape asked: a generator that ignores the shape word draws one fill ratio
            "shapes": shapes_drawn([s.main.shape for s in scenes], drawn),
            "per_clip": {"scores": scores},
            # the denoising loop alone (no VAE, no detector): what a step cache changes; CPU time is this
            # process's, steadier than wall time on a shared machine
            "sample_seconds": round(sample_wall, 2),
            "sample_cpu_seconds": round(sample_cpu, 2),
        }

    def text_to_video_brief(self, scenes) -> dict:
        """Text-to-video from the brief prompt, as a user types it: its colour, shape and motion read back from
        the drawn object that matches most of them (the world may add a second object the prompt leaves out)."""
        prompts = [brief_prompt(s) for s in scenes]
        detections, sample_wall, sample_cpu = self._generate(prompts)
        scores = [prompt_drawn(d, p) for d, p in zip(detections, prompts)]
        attrs = aggregate(scores)
        return {
            "attrs": attrs,
            "prompt_attrs": _mean(attrs.values()),
            "all3": _mean(all(r.values()) for r in scores),
            "per_clip": {"scores": scores},
            "sample_seconds": round(sample_wall, 2),
            "sample_cpu_seconds": round(sample_cpu, 2),
        }

    def joint(self, scenes) -> dict:
        prompts = [brief_prompt(s) for s in scenes]
        agree, agree_brief, detector, captions, counts = [], [], [], [], []
        for k in range(0, len(scenes), self.batch):
            chunk = prompts[k : k + self.batch]
            out = self.pipe(
                chunk,
                generate_text=True,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                text_order=self.text_order,
                text_temperature=self.text_temperature,
                generator=self._gen(k),
                output_type="latent",
            )
            texts = out.text
            clips = decode_frames(self.vae, out.frames).numpy()
            for prompt, scene, text, clip in zip(chunk, scenes[k : k + self.batch], texts, clips):
                agree.append(score_prompt_agreement(text, prompt))
                caption, detection = parse_caption(text), detect(clip)
                counts.append(object_counts(caption, detection))
                agree_brief.append(_brief_grammar(text, scene))  # the prompt is the scene's brief prompt
                detector.append(score_detection(detection, caption))
            captions += texts
        agree_attrs, det_attrs = aggregate(agree), aggregate(detector)
        return {
            "caption_vs_prompt": _mean(agree_attrs.values()),
            "caption_vs_prompt_attrs": agree_attrs,
            "caption_vs_prompt_all3": _mean(all(r.values()) for r in agree),
            "detector_vs_caption": _mean(_mean(r.values()) for r in detector),
            "detector_attrs": det_attrs,
            # how many objects: a brief prompt names one, the world has two in half its clips; the scorer reads a
            # second object's attributes only where the caption names one
            **aggregate(counts),
            "brief_grammar": aggregate(agree_brief),
            "examples": list(zip(prompts[:8], captions[:8])),
            "per_clip": {"agree": agree, "detector": detector, "counts": counts},
        }

    def fill_in(self, scenes) -> dict:
        """Asking the clip: for each attribute, the true detailed caption with that attribute's words blanked
        (``_`` per word: the count is given) and everything else held; the accuracy of the filled words, read
        back with the caption grammar (a fill that does not parse counts as wrong)."""
        latents = self.encode([render(s) for s in scenes])
        truths = [describe(s) for s in scenes]
        attrs, examples = {}, {}
        for attr in FILL_ATTRS:
            rows = [i for i, t in enumerate(truths) if not attr.startswith("second_") or t.second is not None]
            hits = []
            for k in range(0, len(rows), self.batch):
                chunk = rows[k : k + self.batch]
                out = self.pipe(
                    video_latents=latents[chunk],
                    template=[_blanked(truths[i], attr) for i in chunk],
                    num_inference_steps=self.caption_steps,
                    text_order=self.text_order,
                    text_temperature=self.text_temperature,
                    generator=self._gen(k),
                    video_cache_interval=self.video_cache_interval,
                )
                hits += [
                    int(_field(parse_caption(text), attr) == _field(truths[i], attr))
                    for text, i in zip(out.text, chunk)
                ]
                examples.setdefault(attr, out.text[0])
            attrs[attr] = _mean(hits)
        return {"attrs": attrs, "examples": examples}

    def run(self, split: str, n: int, tasks: tuple[str, ...] = TASKS) -> dict:
        scenes = [s for _, s in iter_split(split, n)]
        if self.base is not None:  # the base generator has no text stream: text-to-video only
            tasks = tuple(t for t in tasks if t.startswith("text_to_video")) or ("text_to_video",)
        out = {}
        start = time.time()
        for task in tasks:
            out[task] = getattr(self, task)(scenes)
            print(f"{task} done ({time.time() - start:.0f}s)", flush=True)
        out["seconds"] = round(time.time() - start, 1)
        return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate a pipeline on the ShapesWorld benchmark.")
    parser.add_argument("--model", help="pipeline folder")
    parser.add_argument("--base-transformer", default=None, help="evaluate this WanTransformer3DModel (t2v only)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "compositional"])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=EVAL_STEPS, help="denoising steps for text-to-video and joint")
    parser.add_argument(
        "--caption-steps",
        type=int,
        default=CAPTION_STEPS,
        help="text denoising steps for captioning (the clip is clean there, so only the text takes steps)",
    )
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument(
        "--text-temperature",
        type=float,
        default=0.0,
        help="captioning and joint: sample each revealed word at this temperature (0 = greedy, the default)",
    )
    parser.add_argument(
        "--video-cache-interval",
        type=int,
        default=EVAL_VIDEO_CACHE_INTERVAL,
        help="captioning: the clip's keys and values every K steps, the text alone between (1: exact, the default)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="text-to-video and joint: diffusers' step cache NAME[:VALUE] (univigu.caching; default none)",
    )
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--text-order",
        default="auto",
        choices=["auto", "confidence", "random"],
        help="which masked tokens each text step reveals (UniViGUPipeline.__call__'s text_order)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        choices=[*TASKS, *EXTRA_TASKS],
        help="evaluate only these tasks (fill_in: asking the clip by filling in blanks; not run by default)",
    )
    parser.add_argument("--name", default=None)
    parser.add_argument("--out", default=None, help="results .json (a .md table is written beside it)")
    parser.add_argument("--table", nargs="+", default=None, help="print a markdown table of these result files")
    parser.add_argument(
        "--fill-table", nargs="+", default=None, help="print the fill-in table (fill_in beside captioning) of these"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.table:
        print(markdown_table([json.loads(Path(p).read_text()) for p in args.table]), end="")
        return
    if args.fill_table:
        print(fill_in_table([json.loads(Path(p).read_text()) for p in args.fill_table]), end="")
        return
    if not args.model:
        parser.error("--model is required")
    if args.video_cache_interval < 1:
        parser.error(f"--video-cache-interval must be >= 1 (1: exact), got {args.video_cache_interval}")
    from univigu.caching import describe_cache

    try:
        cache = describe_cache(args.cache)
    except ValueError as err:
        parser.error(f"--cache: {err}")
    evaluator = Evaluator(
        args.model,
        args.base_transformer,
        args.steps,
        args.guidance,
        args.batch,
        args.seed,
        args.text_order,
        args.caption_steps,
        args.text_temperature,
        video_cache_interval=args.video_cache_interval,
        cache=cache,
    )
    result = {
        "name": args.name or Path(args.model).name,
        "model": args.model,
        "base_transformer": args.base_transformer,
        "split": args.split,
        "n": args.n,
        "steps": args.steps,
        "caption_steps": args.caption_steps,
        "guidance": args.guidance,
        "seed": args.seed,
        "text_order": args.text_order,
        "text_temperature": args.text_temperature,
        "video_cache_interval": args.video_cache_interval,
        "cache": cache,
        **evaluator.run(args.split, args.n, tuple(args.tasks)),
    }
    table = markdown_table([result])
    print(table, end="")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # whole or not at all: the recipe takes the file for a finished evaluation
        replace_file(out.with_suffix(".md"), table)
        replace_file(out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
