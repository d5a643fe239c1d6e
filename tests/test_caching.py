"""Caches across steps: the exact prompt cache, diffusers' step caches on our transformer, bad specs."""

import functools
import os
import sys

import numpy as np
import pytest
import torch
from diffusers import FirstBlockCacheConfig
from diffusers.hooks import HookRegistry

from univigu.caching import CACHE_NAMES, PROMPT_CACHE_HOOK, parse_cache
from univigu.cli import main
from univigu.models.transformer_univigu import UniViGUAttnProcessor, UniViGUBlock
from univigu.tiny import tiny_pipeline

PROMPT = "a red circle moves left"
STEPS = 8


def _counting(monkeypatch, cls, name: str) -> dict:
    """Count calls of ``cls.name``. Patch before the hooks are applied: a hook keeps the forward it wrapped."""
    calls = {"n": 0}
    original = getattr(cls, name)

    @functools.wraps(original)  # the hooks read the block's signature through __wrapped__
    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def _clip() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)


def _t2v(pipe, **kwargs):
    return pipe.text_to_video(PROMPT, num_inference_steps=STEPS, guidance_scale=4.0, seed=1, **kwargs).frames


@pytest.mark.parametrize("spec", ["first_block:1.0", "taylorseer:2", "sea:2.0"])
def test_an_approximate_step_cache_skips_block_computations(monkeypatch, spec):
    calls = _counting(monkeypatch, UniViGUBlock, "forward")
    pipe = tiny_pipeline()
    blocks = len(pipe.transformer.blocks)
    _t2v(pipe)
    assert calls["n"] == blocks * STEPS
    pipe.set_step_cache(spec)
    for task in (pipe.text_to_video, pipe.joint):
        calls["n"] = 0
        out = task(PROMPT, num_inference_steps=STEPS, guidance_scale=4.0, seed=1)
        assert 0 < calls["n"] < blocks * STEPS, (task.__name__, calls["n"])
        assert out.frames.shape == (5, 16, 16, 3)


def test_attention_broadcast_skips_attention(monkeypatch):
    calls = _counting(monkeypatch, UniViGUAttnProcessor, "__call__")
    pipe = tiny_pipeline()
    pipe.set_step_cache("pab:3")
    _t2v(pipe)
    # attention is reused at video timesteps inside PAB's 100..800
    sigmas = pipe.scheduler.sigmas[:STEPS].tolist()
    inside = [i for i, s in enumerate(sigmas) if 100 < 1000 * s < 800]
    assert inside and calls["n"] < len(pipe.transformer.blocks) * STEPS


def test_the_prompt_cache_is_exact_and_computes_the_prompt_once(monkeypatch):
    calls = []
    original = torch.nn.Linear.forward

    @functools.wraps(original)
    def counted(self, x):
        calls.append(self)
        return original(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", counted)
    pipe = tiny_pipeline()
    keys = [block.attn2.to_k for block in pipe.transformer.blocks]

    def run():
        calls.clear()
        t2v = _t2v(pipe)
        t2v_keys = sum(any(c is k for k in keys) for c in calls)
        joint = pipe.joint(PROMPT, num_inference_steps=STEPS, guidance_scale=4.0, seed=1)
        caption = pipe.caption(_clip(), num_inference_steps=STEPS, video_cache_interval=2).text
        return t2v, joint, caption, t2v_keys

    cached = run()
    assert cached[3] == len(keys)  # each block's prompt keys once per run
    registry = HookRegistry.check_if_exists_or_initialize(pipe.transformer)
    registry.remove_hook(PROMPT_CACHE_HOOK, recurse=True)  # every call computes the prompt's projections again
    registry.invalidate_child_registries_cache()
    plain = run()
    assert plain[3] == len(keys) * STEPS
    np.testing.assert_allclose(cached[0], plain[0], atol=1e-6)
    np.testing.assert_allclose(cached[1].frames, plain[1].frames, atol=1e-6)
    assert cached[1].text == plain[1].text and cached[2] == plain[2]


def test_the_prompt_cache_keys_on_the_prompt_and_stays_out_of_autograd():
    model = tiny_pipeline().transformer
    a, b = torch.randn(1, 16, 32), torch.randn(1, 16, 32)

    def forward(prompt):
        return model(
            video_latents=torch.ones(1, 4, 2, 4, 4),
            video_timestep=torch.tensor([500.0]),
            encoder_hidden_states=prompt,
            text_timestep=torch.tensor([0.0]),
            text_tokens=torch.arange(1, 7)[None],
        ).video_velocity

    with torch.no_grad():
        ref_a, ref_b = forward(a), forward(b)  # outside a cache context: computed
    with model.cache_context("cond"):
        with torch.no_grad():
            assert torch.equal(forward(a), ref_a)  # fills the cache
            assert torch.equal(forward(a.clone()), ref_a)  # equal values: the same output
            assert torch.allclose(forward(b), ref_b, atol=1e-6)  # another prompt: recomputed
        grad = forward(b)  # autograd on: computed, so the weights get their gradients
        grad.sum().backward()
    assert torch.allclose(grad.detach(), ref_b, atol=1e-6)
    assert model.blocks[0].attn2.to_k.weight.grad is not None


def test_disable_restores_identical_outputs_and_captioning_runs_without(monkeypatch):
    calls = _counting(monkeypatch, UniViGUBlock, "forward")
    pipe = tiny_pipeline()
    base, caption = _t2v(pipe), pipe.caption(_clip(), num_inference_steps=STEPS).text
    pipe.set_step_cache("first_block:1.0")
    pipe.set_step_cache("first_block:1")  # idempotent: the same cache
    assert pipe.step_cache == "first_block:1" and pipe.transformer.is_cache_enabled
    cached = _t2v(pipe)
    assert not np.array_equal(cached, base)
    calls["n"] = 0
    assert pipe.caption(_clip(), num_inference_steps=STEPS).text == caption  # held clean: no step cache
    assert calls["n"] > 0 and not pipe.transformer.is_cache_enabled
    assert np.array_equal(_t2v(pipe), cached)  # and back on for generation
    pipe.set_step_cache("none")
    assert not pipe.transformer.is_cache_enabled and pipe.step_cache == "none"
    assert np.array_equal(_t2v(pipe), base)
    # diffusers' own API on the transformer, then off again
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=1.0))
    assert not np.array_equal(_t2v(pipe), base)
    pipe.transformer.disable_cache()
    assert np.array_equal(_t2v(pipe), base)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("bogus", CACHE_NAMES),
        ("first_block:0", ["0.0 < threshold <= 1.0"]),
        ("first_block:1.5", ["0.0 < threshold <= 1.0"]),
        ("sea:x", ["0.0 < threshold <= 2.0"]),
        ("taylorseer:2.5", ["an integer", "2 <= interval <= 10"]),
        ("pab:1", ["2 <= N <= 8"]),
        ("none:3", CACHE_NAMES),
    ],
)
def test_bad_specs_say_the_valid_values(spec, words):
    with pytest.raises(ValueError) as err:
        parse_cache(spec)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_specs_parse_to_diffusers_configs():
    assert parse_cache(None) is None and parse_cache("none") is None and parse_cache(" None ") is None
    assert parse_cache("first_block").threshold == 0.05 and parse_cache("FIRST_BLOCK:0.2").threshold == 0.2
    assert parse_cache("taylorseer:3").cache_interval == 3
    assert parse_cache("sea:0.5").threshold == 0.5 and parse_cache("pab:4").spatial_attention_block_skip_range == 4


@pytest.mark.parametrize("command", ["t2v", "joint"])
def test_cli_rejects_a_bad_cache_in_one_line(command, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    code = main([command, "--model", "unused", "--prompt", PROMPT, "--out", str(out), "--cache", "first_block:7"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "0.0 < threshold <= 1.0" in err
    assert not os.path.exists(out)


def test_cli_generates_with_a_step_cache(tiny_pipe_dir, tmp_path, capsys):
    out = tmp_path / "clip.gif"
    args = ["--model", tiny_pipe_dir, "--prompt", PROMPT, "--out", str(out), "--steps", "5", "--json"]
    assert main(["joint", *args, "--cache", "first_block:0.5"]) == 0
    assert out.exists() and "caption" in capsys.readouterr().out


def test_the_step_cache_benchmark_counts_skipped_blocks():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "step_cache.py"
    spec = importlib.util.spec_from_file_location("step_cache_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    none, taylor = module.measure(["none", "taylorseer:2"], prompts=1, steps=6, rounds=1)
    assert none["blocks_computed"] == 1.0 and 0 < taylor["blocks_computed"] < 1.0
    assert list(taylor)[-1] == "ratio" and abs(taylor["ratio"] - none["cpu_s"] / taylor["cpu_s"]) < 0.02


def test_a_diffusers_without_the_block_registry_costs_the_step_caches_only(monkeypatch):
    from univigu.models import block_registry

    pipe = tiny_pipeline()
    base = _t2v(pipe)
    monkeypatch.setattr(block_registry, "_registered", set())  # as in a fresh process
    monkeypatch.setitem(sys.modules, "diffusers.hooks._helpers", None)  # a diffusers that moved it: ImportError
    with pytest.raises(ValueError, match="no transformer block registry"):
        pipe.set_step_cache("sea:0.35")
    assert pipe.step_cache == "none" and not pipe.transformer.is_cache_enabled  # nothing changed
    assert np.array_equal(_t2v(pipe), base)
    monkeypatch.undo()
    pipe.set_step_cache("sea:0.35")  # with diffusers 0.42's registry the cache works
    assert pipe.transformer.is_cache_enabled
