"""Training: the cache, one step per stage, exact resume, two processes, evaluation, the shipped model."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from training import train as train_mod
from training.shapesworld import detailed_caption, iter_split, parse_caption, render

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
        palette_clips=2,
        detector_clips=2,  # the report's reading of reconstructions: a few clips here, its code is the same
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
    from training.shapesworld.assemble import assemble
    from training.shapesworld.evaluate import Evaluator

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


def test_the_base_stage_is_plain_flow_matching_through_the_adapter():
    """``text_target: none`` runs the loop's one step on a plain Wan (called through ``WanAdapter``): the loss is
    Wan's own text-to-video flow matching, computed here by hand from the same draws, bit for bit."""
    import torch.nn.functional as F
    from diffusers import WanTransformer3DModel

    from univigu.flows import UniFlowLoss, sample_sigmas
    from univigu.models import WanAdapter, append_positions
    from univigu.tiny import tiny_wan_config

    torch.manual_seed(0)
    wan = WanTransformer3DModel(**{**tiny_wan_config(), "in_channels": 7})  # 4 latent + 3 coordinate channels
    rows = 6
    batch = {
        "latents": torch.randn(rows, 4, 3, 4, 4),
        "caption_embeds": torch.randn(rows, 5, 32),
        "prompt_embeds": torch.randn(rows, 5, 32),
        "has_caption": torch.ones(rows, dtype=torch.bool),
    }
    empty = torch.zeros(1, 5, 32)
    cfg = train_mod.Config(cond_caption_prob=0.5, p_drop_prompt=0.3, p_uncond=0.2, video_shift=6.0)
    objective = UniFlowLoss(video_shift=6.0)
    out = train_mod.compute_loss(cfg, WanAdapter(wan), wan, batch, empty, torch.Generator().manual_seed(1), objective)

    gen = torch.Generator().manual_seed(1)
    latents = batch["latents"]
    caption = torch.rand(rows, generator=gen) < 0.5
    uncond = torch.rand(rows, generator=gen) < 0.2
    drop = (torch.rand(rows, generator=gen) < 0.3) | uncond
    cond = torch.where(caption[:, None, None], batch["caption_embeds"], batch["prompt_embeds"])
    cond = torch.where(drop[:, None, None], empty.expand_as(cond), cond)
    sigma = sample_sigmas(rows, 6.0, gen)
    noise = torch.randn(latents.shape, generator=gen)
    s = sigma[:, None, None, None, None]
    noisy = (1 - s) * latents + s * noise
    x = append_positions(noisy, 3)
    velocity = wan(hidden_states=x, timestep=sigma * 1000, encoder_hidden_states=cond, return_dict=False)[0]
    want = F.mse_loss(velocity, noise - latents, reduction="none").flatten(1).mean(1).mean()
    assert torch.equal(out.loss, want) and out.text_loss == 0 and out.lambda_text == 0.0
    out.loss.backward()
    assert wan.proj_out.weight.grad.abs().sum() > 0

    result = WanAdapter(wan)(noisy, sigma * 1000, cond)
    assert torch.equal(result.video_velocity, velocity) and result.text_logits is None and result.text_velocity is None
    with pytest.raises(ValueError, match="no text stream"):
        WanAdapter(wan)(latents, sigma * 1000, cond, text_tokens=torch.zeros(rows, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="needs a text stream"):
        UniFlowLoss(video_clean_prob=0.4).prepare(wan, latents, None, cond, generator=gen)


def _launches(tmp_path: Path, script: str, *args: str, **env: str) -> list[list[str]]:
    """The training launches a recipe script makes, its python and accelerate stubbed to record instead of run."""
    import stat

    log = tmp_path / f"launches{len(list(tmp_path.iterdir()))}"
    log.mkdir()
    stubs = {"py": "exit 0", "accelerate": f'printf "%s\\n" "$@" > "{log}/$(ls "{log}" | wc -l)"'}
    for name, body in stubs.items():
        (tmp_path / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (tmp_path / name).chmod(stat.S_IRWXU)
    run_env = {**os.environ, "PY": str(tmp_path / "py"), "ACCEL": str(tmp_path / "accelerate"), **env}
    run_env.update(RUN=str(tmp_path / f"run-{log.name}"), OUT=str(tmp_path / f"out-{log.name}"))
    # the stubs make no files: the recipe stops where it first copies one, after every training launch
    subprocess.run(["bash", script, *args], cwd=ROOT, env=run_env, capture_output=True)
    return [(log / str(i)).read_text().splitlines() for i in range(len(list(log.iterdir())))]


def _train_configs(launches: list[list[str]]):
    return [
        train_mod.load_config(
            [a.replace("training/", f"{ROOT}/training/", 1) for a in argv[argv.index("training.train") + 1 :]]
        )
        for argv in launches
    ]


def test_the_recipe_is_its_yaml_files(tmp_path):
    """``training/recipes/shapesworld.sh`` gives each stage only its folders: the steps, shifts and objective are the
    YAML files' (the shipped scheduler's shift is the stages' video shift); ``BASE_STEPS`` etc. still override."""
    import shlex

    def recipe(**env) -> list[list[str]]:
        return _launches(tmp_path, "training/recipes/shapesworld.sh", **env)

    launches = recipe()
    assert len(launches) == 3
    allowed = {"config", "cache", "components", "out_dir", "init", "num_threads", "batch_size"}
    for argv in launches:
        train_args = argv[argv.index("training.train") + 1 :]
        assert {a[2:].partition("=")[0] for a in train_args if a.startswith("--")} <= allowed, shlex.join(argv)
    configs = _train_configs(launches)
    assert [(c.stage, c.max_steps, c.video_shift) for c in configs] == [
        ("base", 8000, 6.0),
        ("recall", 2500, 6.0),
        ("refine", 8500, 6.0),
    ]
    assert [c.text_target for c in configs] == ["none", "prompt", "caption"]
    scheduler = json.loads((SHIPPED / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["shift"] == configs[0].video_shift
    shorter = recipe(BASE_STEPS="5", REFINE_STEPS="7")
    assert [a for argv in shorter for a in argv if a.startswith("--max_steps")] == ["--max_steps=5", "--max_steps=7"]
    extra = recipe(TRAIN_ARGS="--ckpt_every=50 --val_every=0")
    assert [(c.ckpt_every, c.val_every) for c in _train_configs(extra)] == [(50, 0)] * 3


def test_thesis_rows_are_configurations(tmp_path):
    """``ablation.sh``'s thesis rows at equal optimizer steps: generator-first trains its base and Stage 1 on prompts
    alone and Stage 2 on the N_SMALL captioned rows; captions-only trains random weights on those rows only; unified
    trains random weights on every row, N_SMALL of them captioned. The prompt-only stages serve every N_SMALL."""

    def row(name: str, **env):
        launches = _launches(tmp_path, "training/shapesworld/ablation.sh", name, N_SMALL="1000", **env)
        return [
            (c.stage, c.max_steps, c.init, c.rows, c.caption_rows, c.cond_caption_prob)
            for c in _train_configs(launches)
        ], launches

    first, launches = row("generator-first")
    assert [(stage, steps, rows, caption_rows, p) for stage, steps, _, rows, caption_rows, p in first] == [
        ("base", 8000, 0, -1, 0.0),
        ("recall", 2500, 0, -1, 0.0),
        ("refine", 8500, 1000, -1, 0.5),
    ]
    assert first[1][2].endswith("thesis/base/final") and first[2][2].endswith("thesis/recall/final")
    only, _ = row("captions-only")
    unified, _ = row("unified")
    assert only == [("refine", 19000, "random", 1000, -1, 0.5)]
    assert unified == [("refine", 19000, "random", 0, 1000, 0.5)]
    # every thesis row reads the one N_BIG cache; its folders are named by N_SMALL
    caches = {a for argv in launches for a in argv if a.startswith("--cache=")}
    assert len(caches) == 1 and caches.pop().endswith("thesis/cache.safetensors")
    assert any("ablation/generator-first-1000/refine" in a for a in launches[2])
    bad = subprocess.run(
        ["bash", "training/shapesworld/ablation.sh", "thesis"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown row thesis" in bad.stderr


def test_recipe_stopped_mid_stage_resumes_to_the_same_weights(tiny_run, tmp_path):
    """``training/recipes/shapesworld.sh`` killed (SIGKILL, its whole process group) inside the base stage, after a
    checkpoint, and started again continues from that checkpoint and ends with the unbroken run's weights, file for
    file (sha256). Tiny configuration: the fixture's data, components and cache stand in for the first stages."""
    import hashlib
    import shutil
    import signal
    import time

    def fresh_run(name: str) -> Path:
        run = tmp_path / name
        shutil.copytree(tiny_run / "data", run / "data" / "train")
        shutil.copytree(tiny_run / "components", run / "components")
        (run / "cache").mkdir()
        shutil.copy(tiny_run / "cache.safetensors", run / "cache" / "train.safetensors")
        return run

    def recipe(run: Path) -> subprocess.Popen:
        env = {
            **os.environ,
            "PY": sys.executable,
            "ACCEL": str(Path(sys.executable).with_name("accelerate")),
            "RUN": str(run),
            "OUT": str(run / "out"),
            "NPROC": "1",
            "BASE_STEPS": "4",
            "UNTIL": "base",
            "TRAIN_ARGS": "--ckpt_every=2 --val_every=0 --warmup_steps=2",
        }
        log = open(run / "recipe.log", "a")
        cmd = ["bash", "training/recipes/shapesworld.sh"]
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def weights(run: Path) -> dict[str, str]:
        files = sorted((run / "base" / "final").glob("*.safetensors"))
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    unbroken = fresh_run("unbroken")
    assert recipe(unbroken).wait(timeout=600) == 0, (unbroken / "recipe.log").read_text()
    stopped = fresh_run("stopped")
    proc = recipe(stopped)
    deadline = time.time() + 300
    while not (stopped / "base" / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, (stopped / "recipe.log").read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (stopped / "base" / "final").exists()  # stopped mid-stage
    assert recipe(stopped).wait(timeout=600) == 0, (stopped / "recipe.log").read_text()
    log = (stopped / "recipe.log").read_text()
    assert "resumed from" in log and "checkpoint-" in log.split("resumed from")[1].splitlines()[0]
    assert not (stopped / "recall").exists()  # UNTIL=base stopped after the base stage
    assert len(weights(unbroken)) == 1 and weights(stopped) == weights(unbroken)


def test_text_targets_are_checked(tiny_run, tiny_stages):
    from training.data import LatentCache

    with pytest.raises(SystemExit, match="text_target must be one of"):
        train_mod.load_config(["--text_target=words"])
    with pytest.raises(SystemExit, match="need a text stream"):
        train_mod.load_config(["--video_clean_prob=0.4"])
    with pytest.raises(SystemExit, match="starts from a trained model"):
        train_mod.load_config(["--text_target=caption"])
    recall = train_mod.load_config(_args(tiny_run, "base", "x", f"--init={tiny_run / 'recall' / 'final'}"))
    with pytest.raises(SystemExit, match="has a text stream"):
        train_mod.build_model(recall, LatentCache(tiny_run / "cache.safetensors"))


def test_a_patch_wider_than_the_hidden_size_is_refused(tiny_run):
    # 4 latent channels x 1x8x8 = 256 values per token through a 4 x 16 = 64-wide model
    args = _args(tiny_run, "base", "wide", "--max_steps=1", *TINY_MODEL, "--model.patch_size=[1, 8, 8]")
    with pytest.raises(SystemExit, match="a patch holds 256 latent values .* hidden size is 64"):
        train_mod.train(train_mod.load_config(args))


def test_resume_is_exact_and_the_weight_average_is_what_a_run_writes(tiny_run, monkeypatch):
    """A run interrupted in step 4 (after the checkpoint of step 3 and its metrics, with a torn row after) and
    started again resumes from that checkpoint, drops the metrics past it and logs the unbroken run's losses.

    With ema_decay, checkpoints' model/ and final/ hold the average (diffusers' EMAModel: decay min(d, (1 + n) /
    (10 + n)) at its n-th update) and state/ the raw weights, trained as without it; the resumed run writes the
    unbroken run's average."""
    common = _args(tiny_run, "base", "", "--max_steps=5", "--ckpt_every=1", "--lr=3e-3", *TINY_MODEL)
    ema = [*common, "--ema_decay=0.9"]
    train_mod.train(train_mod.load_config([*common, f"--out_dir={tiny_run / 'plain'}"]))
    train_mod.train(train_mod.load_config([*ema, f"--out_dir={tiny_run / 'full'}"]))
    raw4, raw5 = (load_file(tiny_run / "full" / f"checkpoint-{n}" / "state" / "model.safetensors") for n in (4, 5))
    avg4, avg5 = (
        load_file(tiny_run / "full" / f"checkpoint-{n}" / "model" / "diffusion_pytorch_model.safetensors")
        for n in (4, 5)
    )
    final = load_file(tiny_run / "full" / "final" / "diffusion_pytorch_model.safetensors")
    plain = load_file(tiny_run / "plain" / "final" / "diffusion_pytorch_model.safetensors")
    decay, name = 5 / 14, "blocks.0.ffn.net.0.proj.weight"  # the 5th update: n = 4
    torch.testing.assert_close(avg5[name], decay * avg4[name] + (1 - decay) * raw5[name])
    assert torch.equal(raw5[name], plain[name])  # the average leaves training as it is
    assert torch.equal(final[name], avg5[name]) and not torch.equal(final[name], plain[name])

    lr_at = train_mod.lr_at

    def interrupted(cfg, step):
        if step == 3:
            raise KeyboardInterrupt  # as a kill would, between steps: nothing past step 3 is written
        return lr_at(cfg, step)

    monkeypatch.setattr(train_mod, "lr_at", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(train_mod.load_config([*ema, f"--out_dir={tiny_run / 'cut'}"]))
    assert len(_losses(tiny_run / "cut")) == 3 and not (tiny_run / "cut" / "final").exists()
    with open(tiny_run / "cut" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 0.')  # and killed writing the next row: a torn last line, cut on resume
    monkeypatch.setattr(train_mod, "lr_at", lr_at)
    train_mod.train(train_mod.load_config([*ema, f"--out_dir={tiny_run / 'cut'}"]))
    assert len(_losses(tiny_run / "cut")) == 5
    np.testing.assert_allclose(_losses(tiny_run / "cut"), _losses(tiny_run / "plain"), rtol=1e-6, atol=0)
    again = load_file(tiny_run / "cut" / "final" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(again[k], final[k]) for k in final)
    with pytest.raises(SystemExit, match="ema_decay must be in"):
        train_mod.load_config([*common, "--ema_decay=1"])
    # --ema_decay added to a resumed run: the average starts at the checkpoint's weights (its 6th update: n = 5)
    train_mod.train(train_mod.load_config([*ema, "--max_steps=6", f"--out_dir={tiny_run / 'plain'}"]))
    raw6 = load_file(tiny_run / "plain" / "checkpoint-6" / "state" / "model.safetensors")
    late = load_file(tiny_run / "plain" / "final" / "diffusion_pytorch_model.safetensors")
    torch.testing.assert_close(late[name], 6 / 15 * plain[name] + (1 - 6 / 15) * raw6[name])


def test_foreground_weight_marks_objects_and_their_neighbours():
    """An object's latents (far from the clip's background) and their 8 neighbours in each frame weigh
    1 + video_fg_weight, the rest 1, on any background; a negative weight is refused in one line."""
    latents = torch.full((2, 8, 3, 16, 16), 0.5)
    latents[1] = -1.0  # another clip, another background
    latents[:, :, :, 4:7, 9:12] += 3.0  # an object, 3 x 3 latents, in every frame
    latents[0, :, 1, 4:7, 9:12] -= 3.0  # gone from clip 0's middle frame
    weight = train_mod.foreground_weight(latents, 10.0)
    assert weight.shape == (2, 1, 3, 16, 16)
    want = torch.ones(2, 1, 3, 16, 16)
    want[:, :, :, 3:8, 8:13] = 11.0
    want[0, :, 1] = 1.0
    assert torch.equal(weight, want)
    assert train_mod.load_config(["--video_fg_weight=10"]).video_fg_weight == 10.0
    with pytest.raises(SystemExit, match="video_fg_weight must be >= 0"):
        train_mod.load_config(["--video_fg_weight=-1"])


def test_precompute_stopped_between_parts_resumes_to_the_same_cache(tiny_run, tmp_path, monkeypatch, capsys):
    """A precompute stopped after a part of its clips continues there (re-encoding none) and writes the cache an
    unbroken run writes; parts of another dataset are refused; the parts go once the cache is whole."""
    import training.data as data_mod
    from training.shapesworld import export_dataset

    export_dataset(tmp_path / "data", "train", 10)
    args = (str(tmp_path / "data"), str(tiny_run / "components"))
    unbroken = load_file(data_mod.precompute(*args, str(tmp_path / "unbroken.safetensors"), part_size=4))
    cut = tmp_path / "cut.safetensors"
    save, saved = data_mod.replace_with, []

    def save_then_stop(path, write):
        save(path, write)
        saved.append(Path(path).name)
        if len(saved) == 2:
            raise KeyboardInterrupt  # killed after its second part

    monkeypatch.setattr(data_mod, "replace_with", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        data_mod.precompute(*args, str(cut), part_size=4)
    monkeypatch.undo()
    assert saved == ["00000.safetensors", "00001.safetensors"] and not cut.exists()
    encode = data_mod.encode_frames
    encoded = []
    monkeypatch.setattr(data_mod, "encode_frames", lambda vae, x, b: encoded.append(len(x)) or encode(vae, x, b))
    resumed = load_file(data_mod.precompute(*args, str(cut), part_size=4))
    assert encoded == [2]  # only the last part's two clips
    assert resumed.keys() == unbroken.keys()
    assert all(torch.equal(resumed[k], unbroken[k]) for k in unbroken)
    assert not (tmp_path / "cut.safetensors.parts").exists()
    (tmp_path / "other.safetensors.parts").mkdir()
    (tmp_path / "other.safetensors.parts" / "settings.json").write_text('{"rows": 3}')
    with pytest.raises(ValueError, match="parts of another cache .* delete it"):
        data_mod.precompute(*args, str(tmp_path / "other.safetensors"), part_size=4)
    with pytest.raises(SystemExit):  # from the command line: one line that says what to do
        data_mod.main(["--data", args[0], "--components", args[1], "--out", str(tmp_path / "other.safetensors")])
    assert "parts of another cache" in capsys.readouterr().err.strip().splitlines()[-1]


def test_rows_without_a_caption_condition_on_and_learn_their_prompt(tiny_run, tmp_path):
    """The thesis ablation's data: a cache whose later rows have a brief prompt only (``export --captions``), served
    in part (``rows``, ``caption_rows``); where a row has no caption the loss conditions on and targets its prompt."""
    from training.data import LatentCache, precompute, read_metadata
    from training.shapesworld import export_dataset

    export_dataset(tmp_path / "data", "train", 12, captions=6)
    assert [bool(r["caption"]) for r in read_metadata(tmp_path / "data")] == [True] * 6 + [False] * 6
    precompute(str(tmp_path / "data"), str(tiny_run / "components"), str(tmp_path / "cache.safetensors"))
    cache = LatentCache(tmp_path / "cache.safetensors")
    assert cache.has_caption.tolist() == [True] * 6 + [False] * 6
    few = LatentCache(tmp_path / "cache.safetensors", rows=4, caption_rows=2)
    assert len(few) == 4
    served = torch.cat([few.batch(8, seed=0, step=s)["rows"] for s in range(10)])
    assert set(served.tolist()) == {0, 1, 2, 3}
    batch = few.batch(8, seed=0, step=0)
    assert batch["has_caption"].tolist() == (batch["rows"] < 2).tolist() and 0 < batch["has_caption"].sum() < 8
    assert torch.equal(batch["latents"], cache.latents["17x64x64"][batch["rows"]])  # the subset keeps each row's clip
    with pytest.raises(ValueError, match="rows=13 but .* holds 12 clips"):
        LatentCache(tmp_path / "cache.safetensors", rows=13)

    class Spy:  # the objective's inputs, then stop
        def prepare(self, module, latents, text_ids, cond, drop_text, generator, video_weight=None):
            seen.update(text_ids=text_ids, cond=cond)
            raise StopIteration

    seen = {}
    args = _args(tiny_run, "refine", "x", "--init=random", "--cond_caption_prob=1", "--p_drop_prompt=0", "--p_uncond=0")
    with pytest.raises(StopIteration):
        train_mod.compute_loss(
            train_mod.load_config(args), None, None, batch, cache.empty_embed, torch.Generator(), Spy()
        )
    for i, row in enumerate(batch["rows"].tolist()):
        kind = "caption" if row < 2 else "prompt"
        assert torch.equal(seen["text_ids"][i], getattr(cache, f"{kind}_ids")[row]), (i, row)
        assert torch.equal(seen["cond"][i], getattr(cache, f"{kind}_embeds")[row]), (i, row)
    with pytest.raises(SystemExit, match="rows must be >= 0"):
        train_mod.load_config(["--rows=-1"])


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


def launch_training(
    launch_args: list[str], train_args: list[str], timeout: int, **env: str
) -> subprocess.CompletedProcess:
    """``accelerate launch LAUNCH_ARGS -m training.train TRAIN_ARGS`` as two single-thread processes (``env`` added
    to their environment); asserts it succeeded."""
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
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# Makes the second process slow to write its RNG state, the last file accelerate's save_state writes
SLOW_RANK1 = """
import os, time, torch
_save = torch.save
def save(obj, f, *args, **kwargs):
    if os.environ.get("RANK") == "1" and str(f).endswith("random_states_1.pkl"):
        time.sleep(3)
    return _save(obj, f, *args, **kwargs)
torch.save = save
"""


def test_two_process_launch(tiny_run, tiny_stages, tmp_path):
    # accelerate's --cpu launcher starts one process (multi-CPU needs mpirun); torchrun's does start two,
    # and train.py asks for CPU (gloo) when there is no CUDA.
    args = _args(tiny_run, "recall", "ddp", "--max_steps=2", f"--init={tiny_run / 'base' / 'final'}")
    (tmp_path / "sitecustomize.py").write_text(SLOW_RANK1)
    launch_training(
        ["--multi_gpu", "--num_machines", "1"],
        args,
        timeout=240,
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    )
    assert (tiny_run / "ddp" / "checkpoint-2" / "model" / "config.json").exists()
    # the checkpoint is renamed into place only once every process has written its files (the second one is slow)
    state = tiny_run / "ddp" / "checkpoint-2" / "state"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in state.iterdir()}
    assert json.loads((tiny_run / "ddp" / "timing.json").read_text())["processes"] == 2
    assert len(_losses(tiny_run / "ddp")) == 2  # only the main process writes metrics


def test_batched_sampler_matches_the_pipeline():
    """Row b of a B-row ``UniViGUPipeline.__call__`` is the one-row task run on the same random draws.

    One generator draws every row's video noise, then at each step every row's text jumps; so the one-row
    run for row b starts past b rows of noise (or jumps) and skips the other rows' jumps after each step.
    """
    from univigu.tiny import tiny_pipeline

    pipe = tiny_pipeline()
    prompts = ["a red circle moves left", "a blue square stays still", "a green triangle moves up"]
    rows, shape, length = len(prompts), (pipe.transformer.config.in_channels, 2, 4, 4), pipe.max_text_len

    def generator(noise_rows: int = 0, jump_rows: int = 0) -> torch.Generator:
        gen = torch.Generator().manual_seed(3)
        torch.randn((noise_rows, *shape), generator=gen)
        torch.rand((jump_rows, length), generator=gen)
        return gen

    def close(latents: torch.Tensor, frames: np.ndarray) -> bool:
        return np.abs(pipe.decode_latents(latents).astype(int) - frames.astype(int)).max() <= 1

    final = {}

    def keep(pipe, step, timestep, tensors):  # the text state after each step; the last one stays
        final.update(tensors)
        return {}

    keep_text = {"callback_on_step_end": keep, "callback_on_step_end_tensor_inputs": ["text_state"]}
    clips = np.random.default_rng(0).integers(0, 255, (rows, 5, 16, 16, 3), dtype=np.uint8)
    latents = torch.cat([pipe.encode_video(clip) for clip in clips])
    pipe(video_latents=latents, num_inference_steps=3, generator=generator(), **keep_text)
    ids = final["text_state"]
    for b, clip in enumerate(clips):
        gen = generator(jump_rows=b)

        def skip(pipe, step, timestep, tensors, gen=gen):  # the other rows' jumps
            torch.rand((rows - 1, length), generator=gen)
            return {}

        want = pipe.caption(
            clip, num_inference_steps=3, generator=gen, callback_on_step_end=skip, return_trajectory=True
        )
        assert ids[b].tolist() == want.trajectory[-1].text_ids
    # the rows differ (row 1 from rows 0 and 2: this random model ends its texts after a few words, and two of
    # these clips give the same), so the row-by-row match above is not one caption compared with itself
    assert ids[0].tolist() != ids[1].tolist()

    kwargs = {"num_frames": 5, "height": 16, "width": 16, "guidance_scale": 4.0, "output_type": "latent"}
    latents = pipe(prompts, num_inference_steps=3, generator=generator(), **kwargs).frames
    for b, prompt in enumerate(prompts):
        want = pipe.text_to_video(
            prompt, num_frames=5, height=16, width=16, num_inference_steps=3, guidance_scale=4.0, generator=generator(b)
        )
        assert close(latents[b], want.frames)

    # joint: one step, whose text jumps are certain (the other rows' noise comes between a row's draws)
    latents = pipe(prompts, generate_text=True, num_inference_steps=1, generator=generator(), **kwargs, **keep_text)
    latents, ids = latents.frames, final["text_state"]
    for b, prompt in enumerate(prompts):
        want = pipe.joint(
            prompt,
            num_frames=5,
            height=16,
            width=16,
            num_inference_steps=1,
            guidance_scale=4.0,
            generator=generator(b),
            return_trajectory=True,
        )
        assert close(latents[b], want.frames) and ids[b].tolist() == want.trajectory[-1].text_ids
    with pytest.raises(ValueError, match="follow one row"):
        pipe(prompts, num_inference_steps=1, return_trajectory=True)


def test_evaluate_runs_and_tabulates(tiny_run, tiny_stages, tmp_path):
    from training.shapesworld.assemble import assemble
    from training.shapesworld.evaluate import Evaluator, markdown_table

    assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "pipe"), shift=3.0)
    evaluator = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2)
    result = {"name": "tiny", "split": "test", "n": 2, **evaluator.run("test", 2)}
    assert set(result) >= {"captioning", "text_to_video", "joint"}
    assert 0.0 <= result["joint"]["caption_vs_prompt"] <= 1.0
    assert result["joint"]["second_named"] in (0.0, 0.5, 1.0) and result["joint"]["second_drawn"] in (0.0, 0.5, 1.0)
    assert set(result["captioning"]["objects"]) <= {"main_object", "second_object"}
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
    assert "| joint: captions naming a second object |" in table and "| joint: clips showing a second object |" in table
    assert table.splitlines()[0].endswith("| tiny (test) | bar (test) |")
    assert set(evaluator.run("test", 2, tasks=("captioning",))) == {"captioning", "seconds"}
    # --text-temperature reaches the sampler: sampled captions differ from the greedy ones
    greedy = evaluator.run("test", 4, tasks=("captioning",))["captioning"]["examples"]
    sampled = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2, text_temperature=1.0)
    assert sampled.run("test", 4, tasks=("captioning",))["captioning"]["examples"] != greedy
    with pytest.raises(ValueError, match="text_temperature"):
        Evaluator(str(tmp_path / "pipe"), text_temperature=-1.0)


def test_evaluate_text_to_video_gives_the_caption_to_slot_and_stream(tiny_run, tiny_stages, tmp_path, monkeypatch):
    """Text-to-video conditions on the scene's detailed caption twice: its embedding in the prompt slot and its
    words as the (clean) text stream; from the brief prompt (``text_to_video_brief``), on the brief prompt so."""
    from training.shapesworld import brief_prompt
    from training.shapesworld.assemble import assemble
    from training.shapesworld.evaluate import Evaluator

    assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "p"), shift=3.0)
    evaluator = Evaluator(str(tmp_path / "p"), steps=1, batch=2)
    scenes = [s for _, s in iter_split("test", 4)][2:]  # two two-object scenes: the whole caption, both clauses
    assert all(s.second is not None for s in scenes)
    pipe = evaluator.pipe

    def conditioning(task):  # the task's result and its first step's conditional rows: (slot embeddings, text ids)
        seen = []
        handle = pipe.transformer.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
        try:
            result = task(scenes)
        finally:
            handle.remove()
        return result, seen[0]["encoder_hidden_states"][:2], seen[0]["text_tokens"][:2]

    for task, texts in [
        (evaluator.text_to_video, [detailed_caption(s) for s in scenes]),
        (evaluator.text_to_video_brief, [brief_prompt(s) for s in scenes]),
    ]:
        result, cond, ids = conditioning(task)
        torch.testing.assert_close(cond, pipe.embed_texts(texts, "cpu", torch.float32))
        assert not torch.equal(cond, pipe.embed_texts(["", ""], "cpu", torch.float32))
        assert torch.equal(ids, pipe.text_id_rows(texts)[:, : ids.shape[1]])  # trailing all-pad columns trimmed
        assert (pipe.text_id_rows(texts)[:, ids.shape[1] :] == pipe.transformer.config.pad_token_id).all()
    assert set(result["attrs"]) == {"color", "shape", "motion"} and len(result["per_clip"]["scores"]) == 2


def test_binding_reads_which_object_a_caption_describes():
    from dataclasses import replace

    from training.shapesworld.evaluate import _binding

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
    """A base-generator pipeline samples text-to-video (text stream masked) exactly as plain Wan does: the same
    Euler steps with guidance, written out here with the Wan called directly."""
    from diffusers import WanTransformer3DModel

    from training.shapesworld.assemble import assemble
    from univigu.models import WanAdapter

    base = tiny_run / "base" / "final"
    pipe = assemble(str(tiny_run / "components"), str(base), str(tmp_path / "pipe"), shift=3.0)
    wan = WanTransformer3DModel.from_pretrained(str(base)).eval()
    cond, empty = (pipe.embed_texts([t], "cpu", torch.float32) for t in ("a red circle moves left", ""))
    masked = torch.full((1, pipe.max_text_len), pipe.transformer.config.pad_token_id)
    uni = pipe(
        "a red circle moves left",
        text_ids=masked,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).frames
    shape = tuple(uni.shape[1:])
    scheduler = pipe.scheduler
    scheduler.set_timesteps(2)
    ref = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i, sigma in enumerate(scheduler.sigmas[:-1].tolist()):
            t = torch.full((2,), sigma * 1000)
            v = WanAdapter(wan)(torch.cat([ref, ref]), t, torch.cat([cond, empty])).video_velocity
            ref = scheduler.step(v[1:] + 3.0 * (v[:1] - v[1:]), scheduler.timesteps[i], ref, return_dict=False)[0]
    torch.testing.assert_close(uni, ref, rtol=1e-4, atol=1e-4)


def test_a_float16_folder_is_half_the_bytes_and_loads_as_float32(tiny_run, tiny_stages, tmp_path):
    """``assemble --transformer-dtype float16``: the transformer's file holds float16 tensors in half the bytes,
    and the folder loads on the CPU as float32, generating what the float32 folder generates up to the rounding."""
    from safetensors import safe_open

    from training.shapesworld.assemble import main as assemble_main
    from univigu.loading import load_pipeline

    argv = ["--components", str(tiny_run / "components"), "--transformer", str(tiny_run / "refine" / "final")]
    files = {}
    for dtype in ("float32", "float16"):
        out = tmp_path / dtype
        assemble_main([*argv, "--out", str(out), "--shift", "3.0", "--transformer-dtype", dtype])
        files[dtype] = out / "transformer" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(files["float16"]), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert 0.45 < files["float16"].stat().st_size / files["float32"].stat().st_size < 0.55
    frames = {}
    for dtype in files:
        pipe = load_pipeline(str(tmp_path / dtype))
        assert {p.dtype for p in pipe.transformer.parameters()} == {torch.float32}
        frames[dtype] = pipe.text_to_video("a red circle moves left", num_inference_steps=2, seed=0).frames
    difference = np.abs(frames["float16"].astype(int) - frames["float32"].astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 16, (difference.mean(), difference.max())
    with pytest.raises(SystemExit):
        assemble_main([*argv, "--out", str(tmp_path / "x"), "--shift", "3.0", "--transformer-dtype", "int8"])


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


def test_lora_adapters_train_save_and_load(tiny_run, tiny_stages, tmp_path):
    """``--lora_rank``: only the adapters learn; the final folder is the merged model plus the adapters alone,
    which ``load_lora_weights`` applies to the model the run started from, giving the merged model's outputs."""
    from safetensors.torch import load_file

    from training.shapesworld.assemble import assemble
    from univigu.models import UniViGUTransformer

    recall = tiny_run / "recall" / "final"
    args = _args(tiny_run, "refine", "lora", "--max_steps=2", "--lr=3e-2", "--lora_rank=2", f"--init={recall}")
    train_mod.train(train_mod.load_config(args))
    final = tiny_run / "lora" / "final"
    start = UniViGUTransformer.from_pretrained(str(recall)).state_dict()
    trained = UniViGUTransformer.from_pretrained(str(final)).state_dict()
    assert start.keys() == trained.keys()
    changed = {k for k in start if not torch.equal(start[k], trained[k])}
    assert changed and all(k.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v", "0") for k in changed), sorted(changed)
    adapters = load_file(str(final / "pytorch_lora_weights.safetensors"))
    assert adapters and all(k.startswith("transformer.") and ".lora_" in k for k in adapters)

    merged = assemble(str(tiny_run / "components"), str(final), str(tmp_path / "merged"), shift=3.0)
    adapted = assemble(str(tiny_run / "components"), str(recall), str(tmp_path / "adapted"), shift=3.0)
    adapted.load_lora_weights(str(final))
    for p in (merged, adapted):
        p.set_progress_bar_config(disable=True)
    clip = merged.text_to_video("a red circle moves left", num_inference_steps=2, seed=0, guidance_scale=1.0)
    again = adapted.text_to_video("a red circle moves left", num_inference_steps=2, seed=0, guidance_scale=1.0)
    assert np.abs(clip.frames.astype(int) - again.frames.astype(int)).max() <= 1
    with pytest.raises(SystemExit, match="lora_rank adapts a trained UniViGU model"):
        train_mod.load_config(_args(tiny_run, "recall", "x", "--lora_rank=2", f"--init={tiny_run / 'base' / 'final'}"))


def test_evaluate_samples_a_base_generator_with_its_text_stream_masked(tiny_run, tiny_stages, tmp_path, monkeypatch):
    """``--base-transformer``: the Wan, converted as Stage 1 starts it, generates with every text key masked (its
    own video prediction, test_assemble_converts_the_base_generator) and is scored on text-to-video only."""
    from diffusers import WanTransformer3DModel

    from training.shapesworld.assemble import assemble
    from training.shapesworld.evaluate import Evaluator
    from univigu import UniViGUPipeline

    assemble(str(tiny_run / "components"), str(tiny_run / "refine" / "final"), str(tmp_path / "pipe"), shift=3.0)
    base = tiny_run / "base" / "final"
    seen, call = [], UniViGUPipeline.__call__

    def spy(pipe, *args, **kwargs):
        seen.append((pipe.transformer, kwargs["text_ids"]))
        return call(pipe, *args, **kwargs)

    monkeypatch.setattr(UniViGUPipeline, "__call__", spy)
    result = Evaluator(str(tmp_path / "pipe"), steps=2, batch=2, base_transformer=str(base)).run("test", 2)
    assert set(result) == {"text_to_video", "seconds"} and seen
    head = WanTransformer3DModel.from_pretrained(str(base)).proj_out.weight
    for transformer, text_ids in seen:
        assert torch.equal(transformer.proj_out.weight, head)
        assert (text_ids == transformer.config.pad_token_id).all()
