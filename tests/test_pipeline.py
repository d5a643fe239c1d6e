"""UniViGUPipeline: the three tasks, trajectories, guidance batching, text trimming, loading, bad input."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

from univigu import Cancelled, PromptError, TrajectoryRecorder, UniViGUPipeline
from univigu.loading import ModelLoadError, load_pipeline, pipeline_from_wan
from univigu.tiny import tiny_pipeline, tiny_text_encoder, tiny_vae, tiny_wan_config
from univigu.tokenization import build_word_tokenizer

PROMPT = "a red circle moves left"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def _forward_spy(pipe):
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append({k: v.shape for k, v in kwargs.items() if torch.is_tensor(v)}),
        with_kwargs=True,
    )
    return calls, handle


def test_text_to_video_batches_guidance_and_skips_padding(pipe):
    calls, handle = _forward_spy(pipe)
    try:
        out = pipe.text_to_video(PROMPT, num_inference_steps=3, guidance_scale=4.0, seed=1, return_trajectory=True)
    finally:
        handle.remove()
    assert out.frames.shape == (5, 16, 16, 3) and out.frames.dtype == np.uint8
    assert len(calls) == 3  # one forward per step: conditional and unconditional rows batched
    n_ids = len(pipe.text_ids(PROMPT))
    assert n_ids < pipe.max_text_len
    assert all(c["video_latents"][0] == 2 and c["text_tokens"] == (2, n_ids) for c in calls)
    traj = out.trajectory
    assert [s.step for s in traj] == [1, 2, 3] and traj[-1].video_sigma == 0.0
    assert traj[0].video_x0.shape == traj[0].video_latents.shape == (4, 2, 4, 4)
    assert traj[0].text_ids is None and all(s.video_delta > 0 for s in traj)
    from_trajectory = pipe.decode_latents(traj[-1].video_latents.float()[None])  # stored as float16
    assert np.abs(out.frames.astype(int) - from_trajectory).max() <= 3
    same = pipe.text_to_video(PROMPT, num_inference_steps=3, guidance_scale=4.0, seed=1).frames
    other = pipe.text_to_video(PROMPT, num_inference_steps=3, guidance_scale=4.0, seed=2).frames
    assert np.array_equal(out.frames, same) and not np.array_equal(out.frames, other)
    no_cfg_calls, handle = _forward_spy(pipe)
    try:
        pipe.text_to_video(PROMPT, num_inference_steps=2, guidance_scale=1.0)
    finally:
        handle.remove()
    assert all(c["video_latents"][0] == 1 for c in no_cfg_calls)


def test_an_all_pad_text_stream_is_an_empty_one(pipe):
    """Clean text of pads only (every key masked) runs, and matches that row beside a real caption."""
    pad = pipe.transformer.config.pad_token_id
    ids = pipe.text_id_rows([PROMPT, PROMPT])
    ids[0] = pad
    kwargs = {"num_inference_steps": 2, "guidance_scale": 1.0, "output_type": "latent"}
    alone = pipe([PROMPT], text_ids=ids[:1], generator=torch.Generator().manual_seed(0), **kwargs).frames
    both = pipe([PROMPT, PROMPT], text_ids=ids, generator=torch.Generator().manual_seed(0), **kwargs).frames
    assert torch.isfinite(alone).all()
    torch.testing.assert_close(alone[0], both[0], rtol=1e-4, atol=1e-4)


def test_caption_denoises_text_from_the_mask_source(pipe):
    video = (np.random.default_rng(0).random((9, 40, 30, 3)) * 255).astype(np.uint8)
    seen = []
    live = TrajectoryRecorder(on_step=seen.append)
    out = pipe.caption(video, num_inference_steps=4, callback_on_step_end=live, return_trajectory=True)
    assert any("resized" in n for n in out.notes) and any("frames" in n for n in out.notes)
    assert len(seen) == 4 and seen == out.trajectory
    first, last = out.trajectory[0], out.trajectory[-1]
    assert first.video_latents is None and last.text_sigma == 0.0
    assert all(first.changed) and len(first.text_confidence) == pipe.max_text_len
    assert "<mask>" not in last.text_tokens  # the last step commits every position
    assert all(0 <= c <= 1 for c in last.text_confidence)
    assert out.text == pipe.decode_text(last.text_ids)


def test_joint_evolves_both_streams(pipe):
    out = pipe.joint(PROMPT, num_inference_steps=3, seed=3, return_trajectory=True)
    assert out.frames.shape == (5, 16, 16, 3) and out.text == pipe.decode_text(out.trajectory[-1].text_ids)
    for step in out.trajectory:
        assert step.video_latents is not None and step.text_ids is not None
    masks = [s.text_tokens.count("<mask>") for s in out.trajectory]
    assert masks[-1] == 0 and masks[0] >= masks[-1]


def test_joint_text_schedule_is_linear_and_the_text_ends_once(pipe):
    ends = {pipe.tokenizer.eos_token_id, pipe.transformer.config.pad_token_id}
    for seed in range(3):
        out = pipe.joint(PROMPT, num_inference_steps=4, seed=seed, return_trajectory=True)
        assert [s.text_sigma for s in out.trajectory] == pytest.approx([0.75, 0.5, 0.25, 0.0])
        for step in out.trajectory:  # words (or masks), then one end token, then pads
            ids = step.text_ids
            first = next((k for k, i in enumerate(ids) if i in ends), len(ids))
            assert all(i == pipe.transformer.config.pad_token_id for i in ids[first + 1 :])


def test_cancel_from_the_callback_stops_the_run(pipe):
    seen = []

    def cancel_at_two(step):
        seen.append(step.step)
        if step.step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipe.joint(PROMPT, num_inference_steps=6, callback_on_step_end=TrajectoryRecorder(on_step=cancel_at_two))
    assert seen == [1, 2]
    assert pipe.text_to_video(PROMPT, num_inference_steps=1).frames.shape[0] == 5  # still usable


@pytest.mark.parametrize("formulation,source", [("discrete", "uniform"), ("embedding", "mask")])
def test_other_text_formulations_run_all_tasks(formulation, source):
    p = tiny_pipeline(text_formulation=formulation, text_source=source)
    frames = p.text_to_video(PROMPT, num_inference_steps=2).frames
    caption = p.caption(frames, num_inference_steps=2, return_trajectory=True)
    joint = p.joint(PROMPT, num_inference_steps=2, return_trajectory=True)
    assert caption.text == p.decode_text(caption.trajectory[-1].text_ids)  # the text is the last step's, decoded
    assert joint.text == p.decode_text(joint.trajectory[-1].text_ids) and joint.frames.shape == frames.shape
    assert len(caption.trajectory[-1].text_confidence) == p.max_text_len


def test_bad_inputs_raise_messages(pipe):
    with pytest.raises(PromptError, match="empty"):
        pipe.text_to_video("   ")
    with pytest.raises(PromptError, match="at most 16"):
        pipe.joint(" ".join(["red"] * 40))
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        pipe.text_to_video(PROMPT, num_frames=6)
    with pytest.raises(ValueError, match="multiple of 8"):
        pipe.text_to_video(PROMPT, height=12)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe.text_to_video(PROMPT, num_inference_steps=0)
    with pytest.raises(ValueError, match="F > 0"):
        pipe.caption(np.zeros((0, 16, 16, 3), np.uint8))
    assert pipe.unknown_words("a zebra circle gallops") == ["zebra", "gallops"]


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    loaded = load_pipeline(str(tmp_path / "p"))
    assert isinstance(loaded, UniViGUPipeline) and loaded.config.default_num_frames == 5
    a = pipe.joint(PROMPT, num_inference_steps=2, seed=5)
    b = loaded.joint(PROMPT, num_inference_steps=2, seed=5)
    assert np.array_equal(a.frames, b.frames) and a.text == b.text
    with pytest.raises(ModelLoadError, match="no such file"):
        load_pipeline(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        load_pipeline(str(tmp_path / "empty"))


def test_pipeline_from_a_wan_diffusers_folder(tmp_path):
    torch.manual_seed(0)
    tokenizer = build_word_tokenizer("a red circle moves left".split())
    wan = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_text_encoder(len(tokenizer)),
        vae=tiny_vae(),
        transformer=WanTransformer3DModel(**tiny_wan_config()),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    wan.save_pretrained(tmp_path / "wan")
    with pytest.raises(ModelLoadError, match="holds a WanPipeline"):
        load_pipeline(str(tmp_path / "wan"))
    uni = pipeline_from_wan(str(tmp_path / "wan"), max_text_len=12)
    assert uni.transformer.config.vocab_size == len(tokenizer)
    for key, value in wan.transformer.state_dict().items():
        assert torch.equal(uni.transformer.state_dict()[key], value)
    uni.check_size(5, 16, 16)
    assert uni.text_to_video(PROMPT, num_inference_steps=1, num_frames=5, height=16, width=16).frames.shape == (
        5,
        16,
        16,
        3,
    )
