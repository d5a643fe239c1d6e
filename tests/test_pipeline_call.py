"""UniViGUPipeline.__call__ in diffusers' conventions: the task read from the inputs, batches, output types,
return_dict, callback_on_step_end with its tensor inputs, interrupt, and the seed drawn when none is given."""

import numpy as np
import PIL.Image
import pytest
import torch

from univigu.tiny import tiny_pipeline

PROMPT = "a red circle moves left"
OTHER = "a blue square stays still"


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def test_output_types_are_one_decode_in_diffusers_forms(pipe):
    run = dict(num_inference_steps=2, guidance_scale=4.0, seed=3)
    clip = pipe.text_to_video(PROMPT, **run).frames  # uint8 [F, H, W, 3]
    frames = pipe(PROMPT, **run).frames
    assert frames.shape == (1, *clip.shape) and frames.dtype == np.float32
    assert 0 <= frames.min() and frames.max() <= 1 and np.array_equal(np.rint(frames[0] * 255), clip)
    pt = pipe(PROMPT, output_type="pt", **run).frames
    assert pt.shape == (1, clip.shape[0], 3, *clip.shape[1:3])
    assert np.array_equal(pt.permute(0, 1, 3, 4, 2).numpy(), frames)
    pil = pipe(PROMPT, output_type="pil", **run).frames
    assert len(pil) == 1 and len(pil[0]) == clip.shape[0] and isinstance(pil[0][0], PIL.Image.Image)
    assert np.array_equal(np.asarray(pil[0][2]), clip[2])
    assert np.array_equal(pipe(PROMPT, output_type="uint8", **run).frames, clip[None])  # the frames as decoded
    latents = pipe(PROMPT, output_type="latent", **run).frames
    assert np.array_equal(pipe.decode_latents(latents), clip)
    frames_only, text = pipe(PROMPT, return_dict=False, **run)
    assert np.array_equal(frames_only, frames) and text is None
    with pytest.raises(ValueError, match="output_type must be one of"):
        pipe(PROMPT, output_type="gif", **run)


def test_the_task_follows_the_inputs(pipe):
    clip = pipe.text_to_video(PROMPT, num_inference_steps=2, seed=1).frames
    captioned = pipe(video=clip, num_inference_steps=3, seed=4)
    assert captioned.frames is None and captioned.text == pipe.caption(clip, num_inference_steps=3, seed=4).text
    joint = pipe(PROMPT, generate_text=True, num_inference_steps=3, seed=2)
    one = pipe.joint(PROMPT, num_inference_steps=3, seed=2)
    assert joint.text == one.text and np.array_equal(np.rint(joint.frames[0] * 255), one.frames)
    with pytest.raises(ValueError, match="a given video is captioned"):
        pipe(PROMPT, video=clip, generate_text=True)


def test_a_list_of_prompts_is_one_batch(pipe):
    """Rows draw their noise in order from one generator: row 0 of a batch is the one-prompt run."""
    run = dict(num_inference_steps=3, guidance_scale=4.0, seed=7)
    batch = pipe([PROMPT, OTHER], **run)
    alone = pipe(PROMPT, **run)
    assert batch.frames.shape[0] == 2 and np.abs(batch.frames[0] - alone.frames[0]).max() <= 1 / 255 + 1e-6
    assert not np.array_equal(batch.frames[0], batch.frames[1])
    joint = pipe([PROMPT, OTHER], generate_text=True, **run)
    assert isinstance(joint.text, list) and len(joint.text) == 2


def test_callback_on_step_end_sees_and_replaces_tensors(pipe):
    seen = []

    def callback(p, step, timestep, kwargs):
        seen.append((step, float(timestep), sorted(kwargs)))
        if step == 2:
            return {"latents": torch.zeros_like(kwargs["latents"])}
        return {}

    out = pipe(
        PROMPT,
        num_inference_steps=3,
        seed=1,
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
    )
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] > seen[1][1] > seen[2][1]
    assert all(names == ["latents", "prompt_embeds"] for _, _, names in seen)
    assert torch.equal(out.frames, torch.zeros_like(out.frames))  # the last step's latents were replaced
    with pytest.raises(ValueError, match="not in"):
        pipe(PROMPT, num_inference_steps=1, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["x"])


@pytest.mark.parametrize("attribute", ["interrupt", "_interrupt"])
def test_interrupt_skips_the_remaining_steps(pipe, attribute):
    steps = []

    def stop_after_two(p, step, timestep, kwargs):
        steps.append(step)
        if step == 1:
            setattr(p, attribute, True)
        return {}

    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        out = pipe(PROMPT, num_inference_steps=6, seed=1, callback_on_step_end=stop_after_two)
    finally:
        handle.remove()
    assert steps == [0, 1] and len(calls) == 2 and out.frames.shape[0] == 1
    again = []
    pipe(PROMPT, num_inference_steps=3, seed=1, callback_on_step_end=lambda p, i, t, kw: again.append(i) or {})
    assert again == [0, 1, 2]  # the next run starts uninterrupted


def test_without_a_seed_one_is_drawn_and_reported(pipe):
    a = pipe(PROMPT, num_inference_steps=2)
    b = pipe(PROMPT, num_inference_steps=2)
    assert isinstance(a.seed, int) and a.seed != b.seed
    assert np.array_equal(pipe(PROMPT, num_inference_steps=2, seed=a.seed).frames, a.frames)
    assert pipe(PROMPT, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).seed is None


def test_text_ids_out_of_range_are_refused_before_the_loop(pipe):
    ids = pipe.text_id_rows([PROMPT])
    ids[0, 0] = pipe.transformer.num_text_classes
    with pytest.raises(ValueError, match="text_ids must be ids in"):
        pipe(PROMPT, text_ids=ids, num_inference_steps=1, guidance_scale=1.0)
