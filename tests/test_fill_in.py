"""Asking a clip by filling in blanks: a template's words are held at every step, its blanks are denoised."""

import numpy as np
import pytest
import torch

from univigu import PromptError
from univigu.pipeline_text import template_ids
from univigu.tiny import tiny_pipeline

TEMPLATE = "a _ circle moves _ ."


def _clip(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.mark.parametrize("source", ["mask", "uniform"])
@pytest.mark.parametrize("interval", [1, 2])
def test_held_tokens_never_change_and_blanks_take_words(source, interval):
    pipe = tiny_pipeline(text_source=source)
    ids, held = template_ids(pipe.tokenizer, TEMPLATE, pipe.max_text_len, pipe.transformer.config.pad_token_id)
    states = []

    def spy(pipe, step, timestep, tensors):
        states.append((tensors["prev_text_state"][0].clone(), tensors["text_state"][0].clone()))
        assert torch.equal(tensors["text_held"][0], held)
        return {}

    inputs = ["prev_text_state", "text_state", "text_held"]
    out = pipe(
        video=_clip(),
        template=TEMPLATE,
        num_inference_steps=4,
        seed=1,
        video_cache_interval=interval,
        callback_on_step_end=spy,
        callback_on_step_end_tensor_inputs=inputs,
    )
    assert len(states) == 4
    for before, after in states:  # held positions hold the template's ids before and after every step
        assert torch.equal(before[held], ids[held]) and torch.equal(after[held], ids[held])
    final = states[-1][1]
    ends = {pipe.tokenizer.eos_token_id, pipe.transformer.config.pad_token_id, pipe.transformer.mask_token_id}
    assert all(int(i) not in ends for i in final[~held])  # every blank got a word
    assert out.text == pipe.decode_text(final)  # the template's tokens as given, the blanks filled


def test_fill_in_is_deterministic_per_seed_and_recorded(pipe):
    a = pipe.caption(_clip(), template=TEMPLATE, num_inference_steps=3, seed=5, return_trajectory=True)
    b = pipe.caption(_clip(), template=TEMPLATE, num_inference_steps=3, seed=5)
    assert a.text == b.text and a.seed == 5
    _, held = template_ids(pipe.tokenizer, TEMPLATE, pipe.max_text_len, pipe.transformer.config.pad_token_id)
    assert all(step.held == held.tolist() for step in a.trajectory)
    assert pipe.caption(_clip(), num_inference_steps=3, seed=5, return_trajectory=True).trajectory[0].held is None
    # one template for a batch of clips, or one each
    batch = pipe.caption([_clip(0), _clip(1)], template=[TEMPLATE, "a red _ ."], num_inference_steps=3, seed=5)
    assert len(batch.text) == 2 and batch.text[1].startswith("a red")


def test_blanks_of_many_positions_and_the_noise_level_of_what_is_left(pipe):
    ids, held = template_ids(pipe.tokenizer, "a red _*2 left .", pipe.max_text_len, 0)
    assert held.tolist()[:6] == [True, True, False, False, True, True] and not held[6:].logical_not().any()
    seen = []

    def levels(module, args, kwargs):
        seen.append(kwargs["text_timestep"][0].item())

    handle = pipe.transformer.register_forward_pre_hook(levels, with_kwargs=True)
    try:
        pipe.caption(_clip(), template="a red _*2 left .", num_inference_steps=2, seed=0, video_cache_interval=1)
    finally:
        handle.remove()
    share = 2 / pipe.max_text_len  # two blanks of the stream's positions are all there is to fill
    assert seen == pytest.approx([1000 * share, 500 * share])


def test_bad_templates_are_one_line_errors(pipe):
    with pytest.raises(PromptError, match="no blank"):
        pipe.caption(_clip(), template="a red circle moves left .", num_inference_steps=2)
    with pytest.raises(PromptError, match="holds at most"):
        pipe.caption(_clip(), template="a _*40 circle", num_inference_steps=2)
    with pytest.raises(PromptError, match="no position"):
        pipe.caption(_clip(), template="a _*0 circle", num_inference_steps=2)
    with pytest.raises(ValueError, match="from a clip"):
        pipe("a red circle", template=TEMPLATE, num_inference_steps=2)
    with pytest.raises(ValueError, match="templates for 2 clips"):
        pipe.caption([_clip(), _clip(1)], template=[TEMPLATE] * 3, num_inference_steps=2)
    embedding = tiny_pipeline(text_formulation="embedding")
    with pytest.raises(ValueError, match="needs a discrete text stream"):
        embedding.caption(_clip(), template=TEMPLATE, num_inference_steps=2)


def test_the_benchmark_blanks_one_attribute_and_reads_the_fill_back():
    from training.shapesworld import describe, iter_split, parse_caption
    from training.shapesworld.evaluate import FILL_ATTRS, _blanked, _field, fill_in_table

    scene = next(s for _, s in iter_split("test", 20) if s.second is not None and " " in s.second.cell)
    truth = describe(scene)
    template = _blanked(truth, "second_cell")
    main_clause, second_clause = template.split(", and ")
    assert "_" not in main_clause and second_clause.count("_") == 2  # the second object's cell only, a _ per word
    filled = parse_caption(template.replace("_ _", truth.second.cell))
    assert _field(filled, "second_cell") == truth.second.cell and _field(filled, "cell") == truth.cell
    wrong = "cyan" if truth.color != "cyan" else "red"
    assert _field(parse_caption(_blanked(truth, "color").replace("_", wrong)), "color") == wrong != truth.color
    assert _field(None, "color") is None  # a fill that does not parse reads as nothing: wrong

    main = [a for a in FILL_ATTRS if not a.startswith("second_")]
    scores = [dict.fromkeys(main, 1), dict.fromkeys(FILL_ATTRS, 0)]  # one clip of one object, one of two
    free = dict.fromkeys(FILL_ATTRS, 0.5) | {"second_color": 1.0}
    result = {"split": "test", "captioning": {"attrs": free, "per_clip": {"scores": scores}}}
    result["fill_in"] = {"attrs": dict.fromkeys(FILL_ATTRS, 1.0) | {"second_color": 0.0}}
    lines = fill_in_table([result] * 2)
    assert "| color | 100.0 [" in lines and "| 50.0 [" in lines and "| second color | 0.0 [0–" in lines
