"""The authors' released checkpoint format: parity on every fixture case, strict and safe loading."""

import argparse
import json
import os

import pytest
import torch

from univigu import UniViGUTransformer
from univigu.cli import main as cli_main
from univigu.official import CheckpointError, transformer_from_official


@pytest.fixture(scope="module")
def fixture(official_fixture):
    cases = torch.load(os.path.join(official_fixture, "cases.pt"), weights_only=True)
    with open(os.path.join(official_fixture, "wan_transformer_config.json")) as f:
        wan = json.load(f)
    return official_fixture, cases, wan


def _run(model, inputs):
    with torch.no_grad():
        return model(
            video_latents=inputs["x_v"],
            video_timestep=inputs["time_v"],
            encoder_hidden_states=inputs["cond_t"],
            text_timestep=inputs["time_t"],
            text_tokens=inputs["x_t"],
            text_attention_mask=inputs["x_t_attention_mask"],
        )


@pytest.mark.parametrize("bf16_temb,suffix", [(True, ""), (False, "_fp32temb")])
def test_every_case_matches_the_official_forward(fixture, bf16_temb, suffix):
    path, cases, wan = fixture
    names = [n for n in cases if n != "_meta"]
    assert len(names) == 5
    models = {}
    for name in names:
        case = cases[name]
        ckpt = case["checkpoint"]
        if ckpt not in models:
            models[ckpt] = transformer_from_official(
                os.path.join(path, ckpt), wan, vocab_size=50, bf16_time_embedding=bf16_temb
            ).eval()
        out = _run(models[ckpt], case["inputs"])
        exp = case["expected"]
        torch.testing.assert_close(out.video_velocity, exp["video_velocity" + suffix], atol=1e-4, rtol=1e-4)
        mask = case["inputs"]["x_t_attention_mask"]
        keep = mask if mask is not None else torch.ones(out.text_logits.shape[:2], dtype=torch.bool)
        torch.testing.assert_close(out.text_logits[keep], exp["text_logits" + suffix][keep], atol=1e-4, rtol=1e-4)
    assert models["checkpoint_masked.pth"].config.text_source == "mask"
    assert models["checkpoint.pth"].config.text_source == "uniform"


def test_without_rounding_the_reference_differs(fixture):
    """The bf16 rounding is real: the pure-fp32 model misses the rounded reference by more than 1e-4."""
    path, cases, wan = fixture
    model = transformer_from_official(
        os.path.join(path, "checkpoint.pth"), wan, vocab_size=50, bf16_time_embedding=False
    ).eval()
    case = cases["a_batch2_nomask"]
    diff = (_run(model, case["inputs"]).video_velocity - case["expected"]["video_velocity"]).abs().max()
    assert diff > 1e-4


def test_intermediates_patch_and_embeddings(fixture):
    path, cases, wan = fixture
    model = transformer_from_official(os.path.join(path, "checkpoint.pth"), wan, vocab_size=50).eval()
    case = cases["a_batch2_nomask"]
    inter, inp = case["intermediates"], case["inputs"]
    with torch.no_grad():
        torch.testing.assert_close(
            model.patch_embedding(inp["x_v"]), inter["patch_embedding_out"], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(model.text_embedding(inp["x_t"]), inter["x_t_embedded"])
        cond = model.condition_embedder.text_embedder(inp["cond_t"])
        torch.testing.assert_close(cond, inter["cond_t_embedded"], atol=1e-5, rtol=1e-5)
        temb_v, proj_v = model._embed_time(model.condition_embedder, inp["time_v"], 2, torch.float32)
        torch.testing.assert_close(temb_v, inter["temb_v"], atol=1e-6, rtol=0)
        torch.testing.assert_close(proj_v.flatten(1), inter["timestep_proj_v"], atol=1e-5, rtol=1e-5)


def test_vocab_inference_and_refusals(fixture, tmp_path):
    path, _, wan = fixture
    ckpt = os.path.join(path, "checkpoint_masked.pth")
    assert transformer_from_official(ckpt, wan, text_source="mask").config.vocab_size == 50
    with pytest.raises(CheckpointError, match="pass vocab_size"):
        transformer_from_official(ckpt, wan)
    with pytest.raises(CheckpointError, match="fits neither"):
        transformer_from_official(ckpt, wan, vocab_size=40)
    with pytest.raises(CheckpointError, match="not found"):
        transformer_from_official(tmp_path / "missing.pth", wan, vocab_size=50)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        transformer_from_official(os.path.join(path, "checkpoint.pth"), dict(wan, ffn_dim=128), vocab_size=50)


def _save(state, path):
    torch.save({"model": state, "step": 3}, path)
    return path


def test_strict_keys_name_what_is_wrong(fixture, tmp_path):
    path, _, wan = fixture
    state = torch.load(os.path.join(path, "checkpoint.pth"), weights_only=True)["model"]
    partial = {k: v for k, v in state.items() if not k.startswith("blocks.1.ffn_t")}
    with pytest.raises(CheckpointError, match=r"missing: blocks\.1\.ffn_t"):
        transformer_from_official(_save(partial, tmp_path / "p.pth"), wan, vocab_size=50)
    extra = dict(state, **{"lora_A.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="lora_A.weight"):
        transformer_from_official(_save(extra, tmp_path / "e.pth"), wan, vocab_size=50)
    # FSDP / torch.compile wrappers are stripped, as the official loader does.
    wrapped = {"_orig_mod." + k: v for k, v in state.items()}
    assert transformer_from_official(_save(wrapped, tmp_path / "w.pth"), wan, vocab_size=50) is not None


def test_pickled_code_is_refused(fixture, tmp_path):
    path, _, wan = fixture
    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "hook": argparse.Namespace(cmd="rm -rf /")}, evil)  # an arbitrary class
    with pytest.raises(CheckpointError, match="weights-only"):
        transformer_from_official(evil, wan, vocab_size=50)


def test_cli_convert_writes_a_loadable_folder(fixture, tmp_path, capsys):
    path, cases, _ = fixture
    wan_config = os.path.join(path, "wan_transformer_config.json")

    def convert(checkpoint: str, out, *extra: str) -> int:
        args = ["convert-official", "--checkpoint", os.path.join(path, checkpoint), "--wan", wan_config]
        return cli_main([*args, "--out", str(out), *extra])

    out = tmp_path / "converted"
    assert convert("checkpoint.pth", out, "--vocab-size", "50", "--json") == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    model = UniViGUTransformer.from_pretrained(out).eval()
    case = cases["d_batch2_mask_othergrid"]
    torch.testing.assert_close(
        _run(model, case["inputs"]).video_velocity, case["expected"]["video_velocity"], atol=1e-4, rtol=1e-4
    )
    # A second conversion to the same place is refused, and a bad checkpoint leaves no folder behind.
    assert convert("checkpoint.pth", out, "--vocab-size", "50") == 2
    bad_out = tmp_path / "bad"
    assert convert("cases.pt", bad_out) == 2
    assert not bad_out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".convert-")]
    assert "holds no state dict" in capsys.readouterr().err
