"""The ShapesWorld lab's builders (training/shapesworld/): the per-frame and temporal VAE, the text encoder, and
the studio's example clips."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.shapesworld import detailed_caption, iter_split, render


def test_vae_is_per_frame_and_crops_find_objects():
    """The bundled VAE design: a frame's latent does not depend on earlier frames; crops centre on objects."""
    from training.shapesworld.vae import _crop, build_vae
    from univigu.latents import encode_frames

    torch.manual_seed(0)
    vae = build_vae(base_dim=4, z_dim=4).eval()
    clip = render(next(iter_split("train", 1))[1])
    whole = encode_frames(vae, clip[None], normalized=False)
    assert whole.shape == (1, 4, 17, 16, 16)
    for k in (0, 5, 16):
        alone = encode_frames(vae, clip[None, k : k + 1], normalized=False)
        torch.testing.assert_close(alone[:, :, 0], whole[:, :, k], rtol=1e-5, atol=1e-5)

    gen = torch.Generator().manual_seed(0)
    frames = torch.from_numpy(clip[:1])
    background = frames.flatten(0, 2).median(dim=0).values
    for _ in range(20):
        crop = _crop(frames, 16, 4, 1.0, gen)
        assert crop.shape == (1, 16, 16, 3)
        assert ((crop.int() - background.int()).abs().sum(-1) > 20).any()  # always holds part of an object


def test_temporal_vae_starts_as_every_kth_frame_of_the_per_frame_one():
    """The 4x (2x) temporal VAE made from a per-frame one encodes frame 4j (2j) into latent frame j and decodes each
    latent frame as four (two) copies of the per-frame decoding, before any fine-tuning; a compressing VAE and
    other factors are refused."""
    from training.shapesworld.vae import build_vae, temporal_from_per_frame
    from univigu.latents import encode_frames

    torch.manual_seed(0)
    per_frame = build_vae(base_dim=4, z_dim=4).eval()
    with torch.no_grad():  # past kernel slices stay zero; random weights elsewhere so every layer matters
        for p in per_frame.parameters():
            p.add_(0.05 * torch.randn_like(p) * (p != 0))
    clip = render(next(iter_split("train", 1))[1])
    z_frame = encode_frames(per_frame, clip[None], normalized=False)
    for factor in (4, 2):
        temporal = temporal_from_per_frame(per_frame, factor).eval()
        assert temporal.config.scale_factor_temporal == factor
        latent_frames = 1 + 16 // factor
        z_time = encode_frames(temporal, clip[None], normalized=False)
        assert z_time.shape == (1, 4, latent_frames, 16, 16)
        torch.testing.assert_close(z_time, z_frame[:, :, ::factor], rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            x_frame, x_time = per_frame.decode(z_time).sample, temporal.decode(z_time).sample
        assert x_time.shape == (1, 3, 17, 64, 64)
        repeat = torch.tensor([0] + [j for j in range(1, latent_frames) for _ in range(factor)])
        torch.testing.assert_close(x_time, x_frame[:, :, repeat], rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="per-frame"):
            temporal_from_per_frame(temporal)
    with pytest.raises(ValueError, match="must be 2 or 4"):
        temporal_from_per_frame(per_frame, 3)


def test_a_2x_spatial_vae_keeps_2x2_pixel_cells_and_halves_time_at_most(tmp_path, capsys):
    """``build_vae(spatial=2)``: 32 x 32 latents, still per frame; its temporal VAE (factor 2) starts as every
    other frame; factor 4 is refused, and ``components`` refuses that pair in one line before any training."""
    from training.shapesworld import components
    from training.shapesworld.vae import build_vae, temporal_from_per_frame
    from univigu.latents import encode_frames

    torch.manual_seed(0)
    per_frame = build_vae(base_dim=4, z_dim=4, spatial=2).eval()
    clip = render(next(iter_split("train", 1))[1])
    z_frame = encode_frames(per_frame, clip[None], normalized=False)
    assert z_frame.shape == (1, 4, 17, 32, 32)
    torch.testing.assert_close(
        encode_frames(per_frame, clip[None, 7:8], normalized=False)[:, :, 0], z_frame[:, :, 7], rtol=1e-5, atol=1e-5
    )
    temporal = temporal_from_per_frame(per_frame, 2).eval()
    z_time = encode_frames(temporal, clip[None], normalized=False)
    assert z_time.shape == (1, 4, 9, 32, 32)
    torch.testing.assert_close(z_time, z_frame[:, :, ::2], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert temporal.decode(z_time).sample.shape == (1, 3, 17, 64, 64)
    with pytest.raises(ValueError, match="2 \\(it downsamples once\\)"):
        temporal_from_per_frame(per_frame, 4)
    with pytest.raises(ValueError, match="must be 2 or 4"):
        build_vae(spatial=8)

    out = tmp_path / "components"
    args = ["--data", str(tmp_path / "no-data"), "--out", str(out), "--vae-spatial-factor", "2"]
    with pytest.raises(SystemExit):
        components.main(args + ["--vae-temporal-steps", "10", "--vae-temporal-factor", "4"])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--vae-temporal-factor 4 needs --vae-spatial-factor 4" in message
    assert not out.exists()  # refused before the text encoder or the VAE trained


def test_context_pretraining_makes_a_word_depend_on_its_place():
    """Wan cross-attends the prompt as an unordered set of vectors: with ``context`` the text encoder gives
    "left" as a cell and "left" as a motion different vectors; with masked words alone they stay alike."""
    from training.shapesworld.text_encoder import build_text_encoder, pretrain_text_encoder
    from training.shapesworld.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    texts = [detailed_caption(scene) for _, scene in iter_split("train", 64)]
    probe = [
        "a large red circle at the top left moves right on a white background.",
        "a large red circle at the top right moves left on a white background.",
    ]
    enc = tokenizer(probe, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    words = [tokenizer.convert_ids_to_tokens(row) for row in enc.input_ids]
    cell, motion = words[0].index("left"), words[1].index("left")
    similarity = {}
    for context in (0, 3):
        torch.manual_seed(0)
        encoder = build_text_encoder(len(tokenizer))
        losses = pretrain_text_encoder(encoder, tokenizer, texts, steps=300, batch_size=32, context=context)
        assert losses[-1] < losses[0]
        with torch.no_grad():
            h = encoder(enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        similarity[context] = torch.cosine_similarity(h[0, cell], h[1, motion], dim=0).item()
    assert similarity[3] < 0.6 < similarity[0], similarity


def test_example_clips_are_the_shipped_ones(tmp_path):
    """``training.shapesworld.examples`` writes the test split's first clips with their prompts and captions: the
    index shipped in assets/examples/, which the studio reads with ``univigu.studio.examples.load_examples``."""
    from training.shapesworld.examples import make_examples
    from univigu.studio.examples import EXAMPLES_DIR, load_examples
    from univigu.video_io import read_video

    entries = make_examples(tmp_path, n=2)
    assert entries == json.loads((Path(EXAMPLES_DIR) / "examples.json").read_text())[:2]
    loaded = load_examples(str(tmp_path))
    assert [e["file"] for e in loaded] == [e["file"] for e in entries]
    for entry, (_, scene) in zip(loaded, iter_split("test", 2)):
        frames, clip = read_video(entry["path"])[0].astype(int), render(scene).astype(int)
        assert frames.shape == clip.shape and np.abs(frames - clip).mean() < 4  # mp4 is lossy (another scene: ~100)
        assert entry["caption"] == detailed_caption(scene)


def test_vae_training_stopped_and_resumed_ends_with_the_unbroken_weights(tmp_path, monkeypatch):
    """A VAE run stopped after a checkpoint and started again ends bit for bit as one unbroken run."""
    from training.shapesworld import vae as vae_mod

    clips = torch.from_numpy(np.stack([render(s) for _, s in iter_split("train", 3)]))[:, :2]
    ckpt = tmp_path / "vae.ckpt"

    def run(checkpoint=None):
        torch.manual_seed(0)
        model = vae_mod.build_vae(base_dim=4, z_dim=4)
        kwargs = dict(steps=7, batch_size=2, crop=16, seed=3, log=lambda *_: None)
        vae_mod.train_vae(model, clips, checkpoint=checkpoint, checkpoint_every=2, **kwargs)
        return model.state_dict()

    saved = []
    save = vae_mod._save_checkpoint

    def save_then_stop(*args):
        save(*args)
        saved.append(args[-2])
        if len(saved) == 2:
            raise KeyboardInterrupt  # the process stopped right after its step-4 checkpoint

    monkeypatch.setattr(vae_mod, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(ckpt)
    monkeypatch.undo()
    assert saved == [2, 4] and ckpt.exists()
    resumed, unbroken = run(ckpt), run()
    assert resumed.keys() == unbroken.keys()
    assert all(torch.equal(resumed[k], unbroken[k]) for k in unbroken)
    # the finished run's checkpoint holds its last step: started again, it returns those weights without training
    assert torch.load(ckpt, weights_only=True)["step"] == 7
    monkeypatch.setattr(vae_mod, "frames_to_pixels", lambda *_: pytest.fail("trained again"))
    again = run(ckpt)
    assert all(torch.equal(again[k], unbroken[k]) for k in unbroken)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="another VAE run's .* delete it to start over"):
        vae_mod.train_vae(
            vae_mod.build_vae(base_dim=4, z_dim=4), clips, steps=9, batch_size=2, crop=16, seed=3, checkpoint=ckpt
        )
    with pytest.raises(ValueError, match="another VAE run's"):  # same settings, another architecture
        vae_mod.train_vae(
            vae_mod.build_vae(base_dim=4, z_dim=8), clips, steps=7, batch_size=2, crop=16, seed=3, checkpoint=ckpt
        )
