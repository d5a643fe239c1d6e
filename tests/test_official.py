"""The authors' released checkpoint format: parity on every fixture case, strict and safe loading."""

import argparse
import filecmp
import json
import os
import subprocess
import sys

import pytest
import torch

from univigu import UniViGUTransformer
from univigu.cli import main as cli_main
from univigu.loading import convert_official, load_pipeline
from univigu.official import (
    WEIGHTS_INDEX_NAME,
    CheckpointError,
    convert_official_state_dict,
    load_official_state_dict,
    transformer_from_official,
)


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
    unwrapped = transformer_from_official(_save(state, tmp_path / "s.pth"), wan, vocab_size=50).state_dict()
    stripped = transformer_from_official(_save(wrapped, tmp_path / "w.pth"), wan, vocab_size=50).state_dict()
    assert stripped.keys() == unwrapped.keys() and all(torch.equal(stripped[k], unwrapped[k]) for k in unwrapped)


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


class _RunsCode:
    """Pickles as a call to ``os.system``: what a malicious .pth holds."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _convert_cli(checkpoint, wan, out, *extra):
    return cli_main(["convert-official", "--checkpoint", str(checkpoint), "--wan", str(wan), "--out", str(out), *extra])


def _no_leftovers(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.startswith(".convert-")]


def test_bad_input_is_one_line_and_leaves_nothing(fixture, tmp_path, capsys):
    path, _, wan = fixture
    wan_config = os.path.join(path, "wan_transformer_config.json")
    good = open(os.path.join(path, "checkpoint.pth"), "rb").read()
    (tmp_path / "truncated.pth").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.pth").write_bytes(b"these are not the weights you are looking for\n" * 20)
    torch.save({"model": {}, "hook": argparse.Namespace(cmd="rm -rf /")}, tmp_path / "evil.pth")
    torch.save({"model": {}, "hook": _RunsCode()}, tmp_path / "runs_code.pth")
    legacy = tmp_path / "legacy.pth"
    torch.save(
        torch.load(os.path.join(path, "checkpoint.pth"), weights_only=True),
        legacy,
        _use_new_zipfile_serialization=False,
    )
    (tmp_path / "legacy_truncated.pth").write_bytes(legacy.read_bytes()[: legacy.stat().st_size // 2])
    (tmp_path / "wide.json").write_text(json.dumps(dict(wan, num_attention_heads=4)))
    (tmp_path / "deep.json").write_text(json.dumps(dict(wan, num_layers=3)))
    cases = [
        ("truncated.pth", wan_config, "is truncated or corrupted"),
        ("garbage.pth", wan_config, "is not a torch checkpoint"),
        ("evil.pth", wan_config, "holds pickled code (argparse.Namespace) that will not be run"),
        ("runs_code.pth", wan_config, "holds pickled code (posix.system) that will not be run"),
        ("legacy_truncated.pth", wan_config, "is truncated or corrupted"),
        (os.path.join(path, "checkpoint.pth"), tmp_path / "wide.json", "is 64 wide but the Wan config is 128"),
        (os.path.join(path, "checkpoint.pth"), tmp_path / "deep.json", "has 2 blocks but the Wan config has 3"),
    ]
    for checkpoint, config, message in cases:
        out = tmp_path / "out"
        assert _convert_cli(tmp_path / checkpoint, config, out, "--vocab-size", "50") == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("error: "), err
        assert not out.exists() and _no_leftovers(tmp_path)


def test_a_disk_filling_mid_write_leaves_nothing(fixture, tmp_path):
    """A file-size limit below the checkpoint's size: the shard write fails (EFBIG, as a full disk's ENOSPC)."""
    path, _, _ = fixture
    argv = [
        "convert-official", "--checkpoint", os.path.join(path, "checkpoint.pth"),
        "--wan", os.path.join(path, "wan_transformer_config.json"), "--out", str(tmp_path / "out"),
        "--vocab-size", "50",
    ]  # fmt: skip
    script = (
        "import resource, sys\nfrom univigu.cli import main\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"  # after the imports (.pyc writes)
        f"sys.exit(main({argv!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "could not write" in proc.stderr and "File too large" in proc.stderr
    assert not (tmp_path / "out").exists() and _no_leftovers(tmp_path)


def test_bfloat16_shards_load_in_diffusers_and_keep_fp32_modules(fixture, tmp_path):
    path, _, wan = fixture
    out = tmp_path / "bf16"
    convert_official(
        os.path.join(path, "checkpoint.pth"), os.path.join(path, "wan_transformer_config.json"), str(out),
        vocab_size=50, dtype="bfloat16", max_shard_size="200KB",
    )  # fmt: skip
    index = json.loads((out / WEIGHTS_INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) >= 2
    source = convert_official_state_dict(load_official_state_dict(os.path.join(path, "checkpoint.pth")), 32)
    model = UniViGUTransformer.from_pretrained(out, dtype=torch.bfloat16)
    state = model.state_dict()
    assert set(state) == set(source)
    assert state["blocks.0.ffn_t.net.0.proj.weight"].dtype == torch.bfloat16
    assert state["condition_embedder.time_embedder.linear_1.weight"].dtype == torch.float32  # kept, as stored
    for name, tensor in state.items():
        expected = source[name].to(torch.float32 if tensor.dtype == torch.float32 else torch.bfloat16)
        assert torch.equal(tensor, expected), name


def _wan_pipeline_folder(folder, wan: dict):
    """A Wan2.1-layout Diffusers folder (WanPipeline.save_pretrained) whose transformer config is ``wan``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    from univigu.tiny import tiny_text_encoder, tiny_vae
    from univigu.tokenization import build_word_tokenizer

    tokenizer = build_word_tokenizer([f"w{i}" for i in range(47)])  # 50 ids with <pad>, </s>, <unk>
    config = {k: v for k, v in wan.items() if not k.startswith("_")}
    WanPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_text_encoder(len(tokenizer), d_model=wan["text_dim"]),
        vae=tiny_vae(z_dim=wan["in_channels"]),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=WanTransformer3DModel(**config),
    ).save_pretrained(folder)
    return folder


def test_a_wan_pipeline_folder_gives_a_pipeline_with_its_components_copied(fixture, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLWan
    from transformers import UMT5EncoderModel

    path, cases, wan = fixture
    wan_dir = _wan_pipeline_folder(tmp_path / "wan", wan)

    def refuse(*args, **kwargs):
        raise AssertionError("convert-official loaded a component it only has to copy")

    with monkeypatch.context() as patch:
        patch.setattr(AutoencoderKLWan, "from_pretrained", refuse)
        patch.setattr(UMT5EncoderModel, "from_pretrained", refuse)
        assert _convert_cli(os.path.join(path, "checkpoint.pth"), wan_dir, tmp_path / "pipe") == 0
    for name in ("tokenizer", "text_encoder", "vae", "scheduler"):
        cmp = filecmp.dircmp(wan_dir / name, tmp_path / "pipe" / name)
        assert not (cmp.left_only or cmp.right_only or cmp.diff_files), name
    pipe = load_pipeline(str(tmp_path / "pipe"))
    assert pipe.transformer.config.vocab_size == 50 and pipe.transformer.config.text_source == "uniform"
    case = cases["a_batch2_nomask"]
    torch.testing.assert_close(
        _run(pipe.transformer.eval(), case["inputs"]).video_velocity,
        case["expected"]["video_velocity"],
        atol=1e-4,
        rtol=1e-4,
    )


def test_an_old_format_checkpoint_converts_without_mapping(fixture, tmp_path):
    path, cases, _ = fixture
    legacy = tmp_path / "legacy.pth"
    blob = torch.load(os.path.join(path, "checkpoint.pth"), weights_only=True)
    torch.save(blob, legacy, _use_new_zipfile_serialization=False)  # torch < 1.6's format: no mmap
    out = tmp_path / "out"
    wan_config = os.path.join(path, "wan_transformer_config.json")
    convert_official(str(legacy), wan_config, str(out), vocab_size=50, max_shard_size="200KB")
    case = cases["b_batch1_textpad3"]
    torch.testing.assert_close(
        _run(UniViGUTransformer.from_pretrained(out).eval(), case["inputs"]).video_velocity,
        case["expected"]["video_velocity"],
        atol=1e-4,
        rtol=1e-4,
    )
