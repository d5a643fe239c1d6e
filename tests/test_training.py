"""Training: the cache, one step per stage, exact resume, two processes, evaluation, the shipped model."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training import train as train_mod
from training.shapesworld import detailed_caption, iter_split, parse_caption, render
from univigu.tiny import tiny_wan_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "assets" / "univigu-shapesworld"
TINY_MODEL = [
    "--model.num_layers=1",
    "--model.num_attention_heads=4",  # 4 x 16 = 64 = 4 latent channels x 1x4x4
    "--model.attention_head_dim=16",
    "--model.ffn_dim=32",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 12-clip dataset, tiny components (a few optimiser steps) and the latent cache."""
    from training.data import precompute
    from training.shapesworld import export_dataset
    from training.shapesworld.components import build

    root = tmp_path_factory.mktemp("train")
    export_dataset(root / "data", "train", 12)
    build(
        str(root / "data"),
        str(root / "components"),
        num_vae_clips=12,
        vae_steps=1,
        vae_batch=2,
        vae_base_dim=4,
        vae_z_dim=4,
        vae_temporal_steps=1,
        vae_temporal_batch=2,
        text_steps=2,
        text_context=3,
    )
    precompute(str(root / "data"), str(root / "components"), str(root / "cache.safetensors"))
    return root


def _args(root: Path, stage: str, out: str, *extra: str) -> list[str]:
    return [
        f"--config={ROOT / 'training' / 'configs' / f'{stage}.yaml'}",
        f"--cache={root / 'cache.safetensors'}",
        f"--components={root / 'components'}",
        f"--out_dir={root / out}",
        "--batch_size=2",
        "--val_every=0",
        "--warmup_steps=2",
        *extra,
    ]


def _losses(out_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_cache_layout(tiny_run):
    from training.data import LatentCache

    cache = LatentCache(tiny_run / "cache.safetensors")
    assert cache.buckets == ["17x64x64"] and len(cache) == 12
    assert tuple(cache.latents["17x64x64"].shape) == (12, 4, 5, 16, 16)  # 4x temporal, 4x spatial
    batch = cache.batch(3, seed=0, step=5)
    again = cache.batch(3, seed=0, step=5)
    assert torch.equal(batch["rows"], again["rows"])  # a function of (seed, step)
    ids = batch["caption_ids"][0].tolist()
    assert ids[ids.index(1) + 1 :] == [0] * (len(ids) - ids.index(1) - 1)  # </s> then pads


@pytest.fixture(scope="module")
def tiny_stages(tiny_run):
    """One optimiser step of each stage on ``tiny_run`` (base -> recall -> refine); the refine step's metrics."""
    train_mod.train(train_mod.load_config(_args(tiny_run, "base", "base", "--max_steps=1", *TINY_MODEL)))
    train_mod.train(
        train_mod.load_config(
            _args(tiny_run, "recall", "recall", "--max_steps=1", f"--init={tiny_run / 'base' / 'final'}")
        )
    )
    return train_mod.train(
        train_mod.load_config(
            _args(tiny_run, "refine", "refine", "--max_steps=1", f"--init={tiny_run / 'recall' / 'final'}")
        )
    )


def test_one_step_of_each_stage(tiny_run, tiny_stages):
    last = tiny_stages
    assert np.isfinite(last["loss"]) and last["text_loss"] > 0
    assert last["lambda_text"] == pytest.approx(80 / 32)  # |video tokens| / |text tokens|: 5*4*4 / 32
    for stage in ("base", "recall", "refine"):
        ckpt = tiny_run / stage / "checkpoint-1"
        assert (ckpt / "model" / "config.json").exists() and (ckpt / "config.yaml").exists()
        assert (tiny_run / stage / "final" / "config.json").exists()
    config = json.loads((tiny_run / "refine" / "final" / "config.json").read_text())
    assert config["_class_name"] == "UniViGUTransformer"
    # base.yaml's coordinate maps: the base reads 4 latent + 3 position channels, the stages keep them as such
    base = json.loads((tiny_run / "base" / "final" / "config.json").read_text())
    assert (base["in_channels"], base["out_channels"]) == (7, 4)
    assert (config["in_channels"], config["position_channels"]) == (4, 3)


def test_ablation_rows_are_configurations(tiny_run, tiny_stages, tmp_path):
    """The ablation's rows without forked code: ``init=random`` trains the UniViGU architecture of ``model``
    from random weights (no base folder exists for it); Stage 2 starts from the base generator as Stage 1
    does (no Stage 1); ``text_formulation=embedding`` gives Stage 1's
    conversion the paper's continuous text stream, which Stage 2 and the evaluator then run."""
    from training.evaluate import Evaluator
    from training.shapesworld.assemble import assemble

    base_yaml = f"--config={ROOT / 'training' / 'configs' / 'base.yaml'}"  # its model, then refine.yaml's objective
    scratch = tiny_run / "scratch"
    cfg = train_mod.load_config([base_yaml, *_args(tiny_run, "refine", "scratch", "--max_steps=1", "--init=random")])
    assert (cfg.stage, cfg.text_target, cfg.position_channels) == ("refine", "caption", 3)
    last = train_mod.train(
        train_mod.load_config(
            [
                *_args(tiny_run, "refine", "scratch", "--max_steps=1"),
                "--init=random",
                *TINY_MODEL,
                "--position_channels=3",
            ]
        )
    )
    assert np.isfinite(last["loss"]) and last["text_loss"] > 0
    config = json.loads((scratch / "final" / "config.json").read_text())
    assert config["_class_name"] == "UniViGUTransformer" and config["text_formulation"] == "discrete"
    assert (config["num_layers"], config["position_channels"], config["ffn_dim"]) == (1, 3, 32)

    base = f"--init={tiny_run / 'base' / 'final'}"
    train_mod.train(train_mod.load_config(_args(tiny_run, "refine", "no-recall", "--max_steps=1", base)))
    config = json.loads((tiny_run / "no-recall" / "final" / "config.json").read_text())
    assert config["_class_name"] == "UniViGUTransformer" and config["position_channels"] == 3  # Stage 2 from base
    train_mod.train(
        train_mod.load_config(
            _args(tiny_run, "recall", "emb-recall", "--max_steps=1", base, "--text_formulation=embedding")
        )
    )
    last = train_mod.train(
        train_mod.load_config(
            _args(tiny_run, "refine", "emb-refine", "--max_steps=1", f"--init={tiny_run / 'emb-recall' / 'final'}")
        )
    )
    assert np.isfinite(last["loss"]) and last["text_loss"] > 0
    config = json.loads((tiny_run / "emb-refine" / "final" / "config.json").read_text())
    assert config["text_formulation"] == "embedding"
    assemble(str(tiny_run / "components"), str(tiny_run / "emb-refine" / "final"), str(tmp_path / "pipe"), shift=3.0)
    result = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2).run("test", 2, tasks=("captioning",))
    assert len(result["captioning"]["per_clip"]["scores"]) == 2
    with pytest.raises(SystemExit, match="text_formulation"):
        train_mod.load_config(_args(tiny_run, "recall", "x", base, "--text_formulation=continuous"))


def test_a_patch_wider_than_the_hidden_size_is_refused(tiny_run):
    # 4 latent channels x 1x8x8 = 256 values per token through a 4 x 16 = 64-wide model
    args = _args(tiny_run, "base", "wide", "--max_steps=1", *TINY_MODEL, "--model.patch_size=[1, 8, 8]")
    with pytest.raises(SystemExit, match="a patch holds 256 latent values .* hidden size is 64"):
        train_mod.train(train_mod.load_config(args))


def test_resume_is_exact(tiny_run):
    common = _args(tiny_run, "base", "", "--max_steps=4", "--ckpt_every=2", "--lr=3e-3", *TINY_MODEL)
    train_mod.train(train_mod.load_config([*common, f"--out_dir={tiny_run / 'full'}"]))
    train_mod.train(train_mod.load_config([*common, f"--out_dir={tiny_run / 'cut'}", "--stop_at=2"]))
    assert len(_losses(tiny_run / "cut")) == 2
    train_mod.train(train_mod.load_config([*common, f"--out_dir={tiny_run / 'cut'}"]))
    np.testing.assert_allclose(_losses(tiny_run / "cut"), _losses(tiny_run / "full"), rtol=1e-6, atol=0)


def test_nan_loss_is_a_clear_error(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tiny_run / "cache.safetensors"))
    tensors["latents/17x64x64"] = torch.full_like(tensors["latents/17x64x64"], float("nan"))
    save_file(tensors, str(tmp_path / "nan.safetensors"))
    args = _args(tiny_run, "base", "nan", "--max_steps=1", f"--cache={tmp_path / 'nan.safetensors'}", *TINY_MODEL)
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        train_mod.train(train_mod.load_config(args))


def test_config_overrides(tmp_path):
    cfg = train_mod.load_config(
        [
            f"--config={ROOT / 'training/configs/refine.yaml'}",
            "--lr=1e-4",
            "--model.num_layers=3",
            "--p_drop_prompt",
            "0.25",
        ]
    )
    assert cfg.stage == "refine" and cfg.text_target == "caption" and cfg.lr == 1e-4
    assert cfg.p_drop_prompt == 0.25 and cfg.model["num_layers"] == 3 and cfg.model["ffn_dim"] == 384
    with pytest.raises(SystemExit, match="unknown config key"):
        train_mod.load_config(["--learning_rate=1"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_caption_slot_clean_text_gives_the_caption_only_to_text_to_video_rows():
    """``caption_slot: clean_text``: the caption sits in the prompt slot only in rows whose text is held clean
    (where the stream denoises the caption, it would be the answer); ``any``: in any row."""
    from types import SimpleNamespace

    from univigu.flows import UniFlowLoss

    class Spy(UniFlowLoss):
        def __call__(self, transformer, latents, text_ids, cond, drop_text=None, generator=None, clean=None):
            self.cond, self.clean = cond, clean
            zero = torch.zeros(())
            return SimpleNamespace(loss=zero, video_loss=zero, text_loss=zero, lambda_text=1.0)

    rows = 64
    batch = {
        "latents": torch.zeros(rows, 4, 2, 2, 2),
        "caption_embeds": torch.ones(rows, 3, 8),
        "prompt_embeds": torch.full((rows, 3, 8), 2.0),
        "caption_ids": torch.ones(rows, 5, dtype=torch.long),
        "prompt_ids": torch.ones(rows, 5, dtype=torch.long),
    }
    for slot in ("clean_text", "any"):
        cfg = train_mod.Config(
            stage="refine",
            text_target="caption",
            cond_caption_prob=1.0,
            p_uncond=0.0,
            caption_slot=slot,
            video_clean_prob=0.4,
            text_clean_prob=0.5,
        )
        spy = Spy(video_clean_prob=0.4, text_clean_prob=0.5)
        train_mod.compute_loss(cfg, None, None, batch, torch.zeros(1, 3, 8), torch.Generator().manual_seed(0), spy)
        caption_rows = (spy.cond == 1).all(-1).all(-1)
        if slot == "any":
            assert caption_rows.all() and spy.clean is None
        else:
            clean_video, clean_text = spy.clean
            assert 0 < clean_text.sum() < rows and clean_video.any()
            assert torch.equal(caption_rows, clean_text)
    with pytest.raises(SystemExit, match="caption_slot"):
        train_mod.load_config(["--caption_slot=sometimes"])


@pytest.mark.parametrize("option", ["--text_warmup_steps=1", "--shared_lr_scale=0"])
def test_the_shared_weights_can_be_held(tiny_run, tiny_stages, option):
    """``text_warmup_steps`` (the first steps) and ``shared_lr_scale`` (their learning rate) hold the weights
    Wan and the text stream share while the text stream's own weights learn."""
    from transformers import AutoTokenizer

    from training.components import load_transformer
    from univigu.models import UniViGUTransformer

    base = tiny_run / "base" / "final"
    out = f"held{option.split('=')[0]}"
    train_mod.train(train_mod.load_config(_args(tiny_run, "recall", out, "--max_steps=1", option, f"--init={base}")))
    trained = UniViGUTransformer.from_pretrained(str(tiny_run / out / "final")).state_dict()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_run / "components" / "tokenizer"))
    start = load_transformer(str(base), tokenizer).state_dict()
    assert all(torch.equal(trained[n], start[n]) for n in start if not UniViGUTransformer.is_text_own(n))
    assert not torch.equal(trained["text_proj_out.weight"], start["text_proj_out.weight"])  # starts at zero
    with pytest.raises(SystemExit, match="no text stream"):
        train_mod.load_config(_args(tiny_run, "base", "x", option))


def test_grow_adds_identity_blocks_that_train(tiny_run, tiny_stages, tmp_path, capsys):
    """``training.shapesworld.grow``: a transformer given one more block computes what it did, the new block's zeroed
    output projections get gradients, and Stage 1 trains from a base generator grown by the command."""
    from training.shapesworld.grow import grow_transformer
    from training.shapesworld.grow import main as grow_main
    from univigu.flows import to_timestep
    from univigu.models import UniViGUTransformer

    model = UniViGUTransformer.from_pretrained(str(tiny_run / "recall" / "final"))
    grown = grow_transformer(model, 1)
    assert grown.config.num_layers == model.config.num_layers + 1
    torch.manual_seed(0)
    c = grown.config
    inputs = dict(
        video_latents=torch.randn(2, c.out_channels, 5, 16, 16),
        video_timestep=to_timestep(torch.tensor([0.3, 0.9])),
        encoder_hidden_states=torch.randn(2, 4, c.text_dim),
        text_timestep=to_timestep(torch.tensor([0.5, 1.0])),
        text_tokens=torch.randint(0, c.vocab_size, (2, c.max_text_len)),
    )
    out, before = grown(**inputs), model(**inputs)
    assert torch.allclose(out.video_velocity, before.video_velocity, atol=1e-6)
    assert torch.allclose(out.text_logits, before.text_logits, atol=1e-6)
    (out.video_velocity.square().mean() + out.text_logits.logsumexp(-1).mean()).backward()
    new = grown.blocks[-1]
    assert new.attn1.to_out[0].weight.grad.abs().sum() > 0 and new.ffn_t.net[-1].weight.grad.abs().sum() > 0

    base, grown_dir = tiny_run / "base" / "final", tmp_path / "grown"
    with pytest.raises(SystemExit):  # a base generator needs the tokenizer to be converted
        grow_main(["--transformer", str(base), "--out", str(grown_dir)])
    assert "converting it needs the tokenizer (pass --components)" in capsys.readouterr().err
    args = ["--transformer", str(base), "--out", str(grown_dir), "--extra-layers", "1"]
    grow_main([*args, "--components", str(tiny_run / "components")])
    init = UniViGUTransformer.from_pretrained(str(grown_dir))
    assert init.config.num_layers == model.config.num_layers + 1
    recall_args = _args(tiny_run, "recall", "recall-grown", "--max_steps=1", f"--init={grown_dir}")
    train_mod.train(train_mod.load_config(recall_args))
    trained = UniViGUTransformer.from_pretrained(str(tiny_run / "recall-grown" / "final"))
    assert trained.config.num_layers == init.config.num_layers
    assert not torch.equal(trained.blocks[-1].attn1.to_out[0].weight, init.blocks[-1].attn1.to_out[0].weight)


def launch_training(launch_args: list[str], train_args: list[str], timeout: int) -> subprocess.CompletedProcess:
    """``accelerate launch LAUNCH_ARGS -m training.train TRAIN_ARGS`` as two single-thread processes; asserts it
    succeeded."""
    cmd = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        *launch_args,
        "--num_processes",
        "2",
        "--main_process_port",
        str(_free_port()),  # not the fixed default: a port still held by an earlier run fails the launch
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "training.train",
        *train_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_process_launch(tiny_run, tiny_stages):
    # accelerate's --cpu launcher starts one process (multi-CPU needs mpirun); torchrun's does start two,
    # and train.py asks for CPU (gloo) when there is no CUDA.
    args = _args(tiny_run, "recall", "ddp", "--max_steps=2", f"--init={tiny_run / 'base' / 'final'}")
    launch_training(["--multi_gpu", "--num_machines", "1"], args, timeout=240)
    assert (tiny_run / "ddp" / "checkpoint-2" / "model" / "config.json").exists()
    assert json.loads((tiny_run / "ddp" / "timing.json").read_text())["processes"] == 2
    assert len(_losses(tiny_run / "ddp")) == 2  # only the main process writes metrics


def test_batched_sampler_matches_the_pipeline():
    """Row b of ``UniViGUPipeline.sample`` over B rows is the one-row task run on the same random draws.

    One generator draws every row's video noise, then at each step every row's text jumps; so the one-row
    run for row b starts past b rows of noise (or jumps) and skips the other rows' jumps after each step.
    """
    from univigu.tiny import tiny_pipeline

    pipe = tiny_pipeline()
    prompts = ["a red circle moves left", "a blue square stays still", "a green triangle moves up"]
    rows, shape, length = len(prompts), pipe._latent_shape(5, 16, 16), pipe.max_text_len
    empty = pipe.encode_prompt([""], "cpu", torch.float32)
    cond = pipe.encode_prompt(prompts, "cpu", torch.float32)

    def generator(noise_rows: int = 0, jump_rows: int = 0) -> torch.Generator:
        gen = torch.Generator().manual_seed(3)
        torch.randn((noise_rows, *shape), generator=gen)
        torch.rand((jump_rows, length), generator=gen)
        return gen

    def close(latents: torch.Tensor, frames: np.ndarray) -> bool:
        return np.abs(pipe.decode_latents(latents).astype(int) - frames.astype(int)).max() <= 1

    clips = np.random.default_rng(0).integers(0, 255, (rows, 5, 16, 16, 3), dtype=np.uint8)
    latents = torch.cat([pipe.encode_video(clip) for clip in clips])
    _, ids, _ = pipe.sample(
        empty.expand(rows, -1, -1), video_latents=latents, num_inference_steps=3, generator=generator()
    )
    for b, clip in enumerate(clips):
        gen = generator(jump_rows=b)
        skip = lambda record, gen=gen: torch.rand((rows - 1, length), generator=gen)  # the other rows' jumps
        want = pipe.caption(clip, num_inference_steps=3, generator=gen, callback=skip, return_trajectory=True)
        assert ids[b].tolist() == want.trajectory[-1].text_ids
    # the rows differ (row 1 from rows 0 and 2: this random model ends its texts after a few words, and two of
    # these clips give the same), so the row-by-row match above is not one caption compared with itself
    assert ids[0].tolist() != ids[1].tolist()

    latents, _, _ = pipe.sample(
        cond,
        empty,
        latent_shape=shape,
        text_ids=pipe.text_id_rows(prompts),
        num_inference_steps=3,
        guidance_scale=4.0,
        generator=generator(),
    )
    for b, prompt in enumerate(prompts):
        want = pipe.text_to_video(prompt, num_inference_steps=3, guidance_scale=4.0, generator=generator(b))
        assert close(latents[b], want.frames)

    # joint: one step, whose text jumps are certain (the other rows' noise comes between a row's draws)
    latents, ids, _ = pipe.sample(
        cond, empty, latent_shape=shape, num_inference_steps=1, guidance_scale=4.0, generator=generator()
    )
    for b, prompt in enumerate(prompts):
        want = pipe.joint(
            prompt, num_inference_steps=1, guidance_scale=4.0, generator=generator(b), return_trajectory=True
        )
        assert close(latents[b], want.frames) and ids[b].tolist() == want.trajectory[-1].text_ids
    with pytest.raises(ValueError, match="follow one row"):
        pipe.sample(cond, empty, latent_shape=shape, num_inference_steps=1, return_trajectory=True)


def test_evaluate_runs_and_tabulates(tiny_run, tiny_stages, tmp_path):
    from training.evaluate import Evaluator, markdown_table
    from training.shapesworld.assemble import assemble

    assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "pipe"), shift=3.0)
    evaluator = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2)
    result = {"name": "tiny", "split": "test", "n": 2, **evaluator.run("test", 2)}
    assert set(result) >= {"captioning", "text_to_video", "joint"}
    assert 0.0 <= result["joint"]["caption_vs_prompt"] <= 1.0
    assert result["joint"]["second_named"] in (0.0, 0.5, 1.0)
    assert set(result["captioning"]["two_object_binding"]) <= {"main", "second"}
    assert result["captioning"]["parsed"] in (0.0, 0.5, 1.0)
    # text-to-video's one- and two-object breakdowns add up to its overall scores
    from training.shapesworld import iter_split

    two = sum(s.second is not None for _, s in iter_split("test", 4))
    assert 0 < two < 4
    t2v = evaluator.run("test", 4, tasks=("text_to_video",))["text_to_video"]
    for key in ("color", "motion", "background"):
        parts = [(4 - two, t2v["attrs_one_object"][key]), (two, t2v["attrs_two_objects"][key])]
        assert t2v["attrs"][key] == pytest.approx(sum(n * v for n, v in parts) / 4)
    assert "second_color" in t2v["attrs_two_objects"] and "second_color" not in t2v["attrs_one_object"]
    table = markdown_table([result])
    assert "| captioning: main colour |" in table and "joint: detector agrees with caption" in table
    assert "| joint: captions naming a second object (info) |" in table
    assert table.splitlines()[0].endswith("| tiny (test) | bar (test) |")
    assert set(evaluator.run("test", 2, tasks=("captioning",))) == {"captioning", "seconds"}
    # --text-temperature reaches the sampler: sampled captions differ from the greedy ones
    greedy = evaluator.run("test", 4, tasks=("captioning",))["captioning"]["examples"]
    sampled = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2, text_temperature=1.0)
    assert sampled.run("test", 4, tasks=("captioning",))["captioning"]["examples"] != greedy
    with pytest.raises(ValueError, match="text_temperature"):
        Evaluator(str(tmp_path / "pipe"), text_temperature=-1.0)
    swept = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2, caption_sweeps=1)
    assert swept.run("test", 2, tasks=("captioning",))["captioning"]["parsed"] in (0.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="caption_sweeps"):
        Evaluator(str(tmp_path / "pipe"), caption_sweeps=-1)


def test_reading_probe_tells_main_second_and_neither(tiny_run, tiny_stages, tmp_path, monkeypatch):
    """``training.shapesworld.probe_reading``: a stand-in transformer that answers with a given caption's words
    is scored as reading the main object, the second, or neither, per attribute; the real one runs end to end."""
    from types import SimpleNamespace

    from training.shapesworld import detailed_caption, iter_split, parse_caption, probe_reading
    from training.shapesworld.assemble import assemble
    from training.shapesworld.text import format_caption

    pipe = assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "p"), 3.0)
    scenes = [s for _, s in iter_split("test", 40) if s.second is not None][:12]
    real, vocab = pipe.transformer, pipe.transformer.config.vocab_size

    class Answers:  # logits that name the words of the given captions
        config, text_key_mask = real.config, real.text_key_mask

        def __init__(self, captions):
            self.ids = pipe.text_id_rows(captions)

        def __call__(self, text_tokens, **_):
            self.seen = text_tokens
            rows = [next(i for i, r in enumerate(self.ids) if ((r == t) | (t == vocab)).all()) for t in text_tokens]
            return SimpleNamespace(text_logits=torch.nn.functional.one_hot(self.ids[rows], vocab + 1).float())

    def swapped(scene, attribute, value=None):  # the caption with the main object's value replaced
        caption = parse_caption(detailed_caption(scene))
        value = value or getattr(caption.second, attribute)
        return format_caption(dataclasses.replace(caption, **{attribute: value}))

    latents = torch.zeros(len(scenes), 1)
    for attribute in ("color", "cell", "motion"):
        expected = sum(probe_reading.masked_positions(pipe, s, attribute) is not None for s in scenes)
        assert expected > 0
        truth = [detailed_caption(s) for s in scenes]
        cases = {"main": truth, "second": [swapped(s, attribute) for s in scenes]}
        for answer, captions in cases.items():
            monkeypatch.setattr(pipe, "transformer", Answers(captions + truth))
            counts = probe_reading.read_attribute(pipe, latents, scenes, attribute)
            assert counts["n"] == expected and counts[answer] == expected, (attribute, answer, counts)
    # --hide-second: the second clause, end token and pads masked as well, the main clause untouched but the
    # attribute; the answers are read the same way
    stand_in = Answers([swapped(s, "color") for s in scenes] + truth)
    monkeypatch.setattr(pipe, "transformer", stand_in)
    counts = probe_reading.read_attribute(pipe, latents, scenes, "color", hide_second=True)
    assert counts["second"] == counts["n"] == len(scenes)
    for tokens, scene in zip(stand_in.seen, scenes):
        start = probe_reading.second_clause_start(pipe, scene)
        masked = (tokens == vocab).nonzero().flatten().tolist()
        assert masked == [2, *range(start, len(tokens))]  # "a {size} {colour} ...": the colour is the third word
    # neither: a colour that no object has
    wrong = [swapped(s, "color", "gray") for s in scenes]
    monkeypatch.setattr(pipe, "transformer", Answers(wrong))
    assert probe_reading.read_attribute(pipe, latents, scenes, "color")["neither"] == len(scenes)
    monkeypatch.undo()
    result = probe_reading.probe(str(tmp_path / "p"), "test", 6, batch=3)
    assert set(result) == set(probe_reading.ATTRIBUTES)
    assert all(r["n"] == 0 or abs(r["main"] + r["second"] + r["neither"] - 1) < 0.01 for r in result.values())


def test_reconsider_words_repredicts_each_word_given_the_rest():
    """``training.sampling.reconsider_words``: each word position, masked alone and left to right, becomes the
    model's greedy word given the others (already reconsidered ones included); end tokens and pads stay."""
    from types import SimpleNamespace

    from training.sampling import reconsider_words

    vocab, end, pad = 10, 1, 0

    class Copier:  # predicts, at a masked position, the word before it plus one (position 0: word 5)
        config = SimpleNamespace(vocab_size=vocab)

        def text_key_mask(self, ids):
            return ids != pad

        def __call__(self, text_tokens, **_):
            i = int((text_tokens == vocab).nonzero()[0, 1])
            words = torch.full((len(text_tokens),), 5) if i == 0 else text_tokens[:, i - 1] + 1
            logits = torch.nn.functional.one_hot(words.clamp(max=vocab - 1), vocab + 1).float()
            return SimpleNamespace(text_logits=logits[:, None].expand(-1, text_tokens.shape[1], -1))

    ids = torch.tensor([[7, 2, 2, end, pad, pad], [3, 9, end, pad, pad, pad]])
    out = reconsider_words(Copier(), None, None, ids, (end, pad), sweeps=1)
    assert out.tolist() == [[5, 6, 7, end, pad, pad], [5, 6, end, pad, pad, pad]]
    assert torch.equal(reconsider_words(Copier(), None, None, ids, (end, pad), sweeps=0), ids)


def test_binding_reads_which_object_a_caption_describes():
    from dataclasses import replace

    from training.evaluate import _binding

    scene = next(
        s
        for _, s in iter_split("test", 50)
        if s.second is not None and s.second.motion != s.main.motion and s.second.cell != s.main.cell
    )
    swapped = replace(scene, main=scene.second, second=scene.main)
    assert _binding(detailed_caption(scene), scene) == {"main": 1, "second": 0}
    assert _binding(detailed_caption(swapped), scene) == {"main": 0, "second": 1}
    # the main object's colour with the second object's motion and cell: bound to neither
    mixed = replace(scene, main=replace(scene.second, color=scene.main.color))
    assert _binding(detailed_caption(mixed), scene) == {"main": 0, "second": 0}
    assert _binding("not a caption", scene) == {"main": 0, "second": 0}


def test_assemble_converts_the_base_generator(tiny_run, tiny_stages, tmp_path):
    """A base-generator pipeline samples text-to-video (text stream masked) exactly as plain Wan does."""
    from diffusers import WanTransformer3DModel

    from training.sampling import wan_sample
    from training.shapesworld.assemble import assemble

    base = tiny_run / "base" / "final"
    pipe = assemble(str(tiny_run / "components"), str(base), str(tmp_path / "pipe"), shift=3.0)
    wan = WanTransformer3DModel.from_pretrained(str(base)).eval()
    cond, empty = (pipe.encode_prompt([t], "cpu", torch.float32) for t in ("a red circle moves left", ""))
    cfg = pipe.config
    shape = pipe._latent_shape(cfg.default_num_frames, cfg.default_height, cfg.default_width)
    masked = torch.full((1, pipe.max_text_len), pipe.transformer.config.pad_token_id)
    uni, _, _ = pipe.sample(
        cond,
        empty,
        latent_shape=shape,
        text_ids=masked,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
    )
    ref = wan_sample(wan, pipe.scheduler, cond, empty, shape, 2, 3.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(uni, ref, rtol=1e-4, atol=1e-4)


def test_assemble_interpolates_the_shared_weights_toward_the_base(tiny_run, tiny_stages, tmp_path):
    """``assemble(base_dir=..., alpha=a)``: shared weights a * tuned + (1 - a) * base, the text stream's own
    weights the tuned ones; a base of another architecture or an alpha out of [0, 1] is refused."""
    from transformers import AutoTokenizer

    from training.components import load_transformer
    from training.shapesworld.assemble import assemble
    from training.shapesworld.interpolate import interpolate_shared
    from univigu.models import UniViGUTransformer
    from univigu.tiny import tiny_pipeline

    base, tuned = tiny_run / "base" / "final", tiny_run / "refine" / "final"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_run / "components" / "tokenizer"))
    start = load_transformer(str(base), tokenizer).state_dict()
    trained = UniViGUTransformer.from_pretrained(str(tuned)).state_dict()
    pipe = assemble(str(tiny_run / "components"), str(tuned), str(tmp_path / "p"), 3.0, str(base), alpha=0.25)
    got = UniViGUTransformer.from_pretrained(str(tmp_path / "p" / "transformer")).state_dict()
    moved = 0
    for name, weight in trained.items():
        if UniViGUTransformer.is_text_own(name):
            assert torch.equal(got[name], weight), name
        else:
            torch.testing.assert_close(got[name], 0.25 * weight + 0.75 * start[name])
            moved += not torch.equal(weight, start[name])
    assert moved > 10  # the refine step did move the shared weights, so the interpolation is seen
    assert pipe.transformer.training is False
    with pytest.raises(ValueError, match="within"):
        interpolate_shared(UniViGUTransformer.from_pretrained(str(tuned)), load_transformer(str(base), tokenizer), 1.5)
    with pytest.raises(ValueError, match="does not match"):
        interpolate_shared(UniViGUTransformer.from_pretrained(str(tuned)), tiny_pipeline().transformer, 0.5)


@pytest.mark.parametrize("condition", ["prompt", "stream"])
def test_evaluate_text_to_video_in_one_channel(tiny_run, tiny_stages, tmp_path, condition, monkeypatch):
    """``t2v_condition`` puts the caption in the prompt slot only (text stream all pad) or the stream only."""
    from training.evaluate import Evaluator
    from training.shapesworld.assemble import assemble

    assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "p"), shift=3.0)
    evaluator = Evaluator(str(tmp_path / "p"), steps=1, batch=2, t2v_condition=condition)
    seen, sample = [], evaluator.pipe.sample

    def spy(cond, *args, **kwargs):
        seen.append((cond, kwargs))
        return sample(cond, *args, **kwargs)

    monkeypatch.setattr(evaluator.pipe, "sample", spy)
    evaluator.text_to_video([s for _, s in iter_split("test", 2)])
    (cond, kwargs), pad = seen[0], evaluator.transformer.config.pad_token_id
    is_empty = torch.equal(cond, evaluator.empty.expand(2, -1, -1))
    all_pad = bool((kwargs["text_ids"] == pad).all())
    assert (is_empty, all_pad) == ((False, True) if condition == "prompt" else (True, False))
    # main-slot: the stream holds the whole caption, the slot the caption without the second object's clause
    scenes = [s for _, s in iter_split("test", 4)][2:]  # two two-object scenes
    assert all(s.second is not None for s in scenes)
    evaluator.t2v_condition, seen[:] = "main-slot", []
    evaluator.text_to_video(scenes)
    (cond, kwargs) = seen[0]
    alone = [detailed_caption(dataclasses.replace(s, second=None)) for s in scenes]
    torch.testing.assert_close(cond, evaluator.embed(alone))
    assert torch.equal(kwargs["text_ids"], evaluator.pipe.text_id_rows([detailed_caption(s) for s in scenes]))
    with pytest.raises(ValueError, match="t2v_condition"):
        Evaluator(str(tmp_path / "p"), t2v_condition="video")


def test_validation_samples(tiny_run, tiny_stages):
    from training.data import LatentCache
    from univigu.models import UniViGUTransformer

    cfg = train_mod.load_config(_args(tiny_run, "refine", "val", "--val_steps=2"))
    model = UniViGUTransformer.from_pretrained(str(tiny_run / "refine" / "final"))
    train_mod.validate(cfg, model, LatentCache(tiny_run / "cache.safetensors"), 1, None)
    out = tiny_run / "val" / "samples" / "step-1"
    assert (out / "0.mp4").exists() and (out / "1.mp4").exists()
    assert (out / "samples.txt").read_text().count("caption: ") == 2


def test_shipped_model_loads_and_captions_a_rendered_clip():
    from training.shapesworld import score_caption
    from univigu.pipeline_univigu import UniViGUPipeline

    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 25 * 2**20, f"assets/univigu-shapesworld is {size / 2**20:.1f} MB"
    pipe = UniViGUPipeline.from_pretrained(str(SHIPPED))
    scenes = [scene for _, scene in iter_split("test", 6)]
    captions = [pipe.caption(render(scene), num_inference_steps=20, seed=0).text for scene in scenes]
    for text, scene in zip(captions, scenes):
        assert parse_caption(text) is not None, f"caption does not parse: {text!r} (truth: {detailed_caption(scene)!r})"
    # It reads the clip: colour and background (its learned attributes; chance 1/6 and 1/3) mostly right.
    scores = [score_caption(text, scene) for text, scene in zip(captions, scenes)]
    assert sum(s["color"] for s in scores) >= 3 and sum(s["background"] for s in scores) >= 4, captions


def test_probe_swaps_one_attribute_and_reads_the_generator(tiny_run):
    """``training.shapesworld.probe``: a swap changes exactly the named attribute; a generator whose
    cross-attention adds nothing reads no word (every swap leaves its loss unchanged), a random one reads them."""
    import random

    from diffusers import WanTransformer3DModel

    from training.components import load_components
    from training.data import LatentCache, embed_texts
    from training.shapesworld.probe import CHOICES, swap, word_sensitivity

    rng = random.Random(0)
    for _, scene in iter_split("train", 20):
        caption = parse_caption(detailed_caption(scene))
        for attr in CHOICES:
            swapped = swap(caption, attr, rng)
            changed = [
                f
                for f in ("color", "shape", "motion", "size", "cell", "background", "second")
                if getattr(swapped, f) != getattr(caption, f)
            ]
            assert changed == [attr]
            if caption.second is not None and attr in ("color", "shape"):
                assert getattr(swapped, attr) != getattr(caption.second, attr)

    tokenizer, text_encoder, _ = load_components(tiny_run / "components")
    batch = LatentCache(tiny_run / "cache.safetensors").batch(4, 0, 0)
    texts = [
        "a large red circle at the top left moves right on a white background.",
        "a small blue square at the center stays still on a black background.",
    ]
    conds = {t: embed_texts(tokenizer, text_encoder, [t] * 4) for t in texts}
    torch.manual_seed(0)
    wan = WanTransformer3DModel(
        **dict(tiny_wan_config(in_channels=4, text_dim=text_encoder.config.d_model), patch_size=(1, 4, 4))
    ).eval()
    read = word_sensitivity(wan, batch["latents"], conds, sigmas=(0.5, 0.9))
    assert all(read[texts[0]][s] != read[texts[1]][s] for s in (0.5, 0.9))
    for block in wan.blocks:  # the cross-attention's output projection at zero: the text cannot reach the video
        torch.nn.init.zeros_(block.attn2.to_out[0].weight)
        torch.nn.init.zeros_(block.attn2.to_out[0].bias)
    deaf = word_sensitivity(wan, batch["latents"], conds, sigmas=(0.5, 0.9))
    assert deaf[texts[0]] == deaf[texts[1]]


def test_text_only_rebuild_keeps_the_vae(tiny_run, tmp_path, capsys):
    """``build --text-only`` retrains the text encoder of an existing components folder and keeps its VAE (and its
    VAE report); a folder with no VAE is refused with a message."""
    import shutil

    from training.shapesworld.components import build, main

    components = tmp_path / "components"
    shutil.copytree(tiny_run / "components", components)
    vae_before = (components / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    encoder_before = (components / "text_encoder" / "model.safetensors").read_bytes()
    report = build(str(tiny_run / "data"), str(components), text_steps=3, text_context=1, text_only=True)
    assert (components / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == vae_before
    assert (components / "text_encoder" / "model.safetensors").read_bytes() != encoder_before
    assert report["text_encoder"]["context"] == 1 and "vae" in report
    assert json.loads((components / "report.json").read_text()) == report
    with pytest.raises(SystemExit):
        main(["--data", str(tiny_run / "data"), "--out", str(tmp_path / "empty"), "--text-only"])
    assert "has no vae/" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()
