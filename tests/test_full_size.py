"""The real code path at full width: Wan2.1-T2V-1.3B's blocks (2 of its 30) and umT5's 256,384-token vocabulary
in bfloat16, from the authors' checkpoint format through ``convert-official`` to one step of each task.

The checkpoint is built by ``benchmarks/full_size.py`` (which measures the same path's memory); only the
transformer is full size, the prompt encoder and VAE are small stand-ins. About 2 GB of disk and memory.
"""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from univigu import UniViGUTransformer
from univigu.cli import main as cli_main
from univigu.official import WEIGHTS_INDEX_NAME, official_key


def _benchmark():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "full_size.py"
    spec = importlib.util.spec_from_file_location("full_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


full_size = _benchmark()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(converted folder, {official key: sha1 of the source tensor's bytes}); the checkpoint is deleted after."""
    work = tmp_path_factory.mktemp("full_width")
    ckpt, config, out = work / "official.pth", work / "wan_transformer_config.json", work / "converted"
    digests = full_size.write_official_checkpoint(str(ckpt), layers=2, dtype=torch.bfloat16)
    config.write_text(json.dumps(full_size.wan_config(2)))
    args = ["convert-official", "--checkpoint", str(ckpt), "--wan", str(config), "--out", str(out)]
    assert cli_main([*args, "--vocab-size", str(full_size.VOCAB_SIZE), "--text-source", "mask"]) == 0
    ckpt.unlink()
    return out, digests


@pytest.fixture(scope="module")
def transformer(converted):
    with torch.no_grad():
        return UniViGUTransformer.from_pretrained(converted[0], dtype=torch.bfloat16).eval()


def test_the_folder_is_diffusers_shards_holding_the_source_weights(converted, transformer):
    out, digests = converted
    index = json.loads((out / WEIGHTS_INDEX_NAME).read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) >= 2 and all((out / name).is_file() for name in shards)
    assert {official_key(k) for k in index["weight_map"]} == set(digests)
    cfg = transformer.config
    assert (cfg.num_attention_heads * cfg.attention_head_dim, cfg.ffn_dim, cfg.text_dim) == (1536, 8960, 4096)
    assert transformer.text_embedding.weight.shape == (256385, 1536) and cfg.time_embedding_rounding == "bfloat16"
    assert 0.97e9 < sum(p.numel() for p in transformer.parameters()) < 0.99e9
    assert transformer.blocks[0].ffn.net[0].proj.weight.dtype == torch.bfloat16
    for name, tensor in transformer.state_dict().items():  # bit-equal (kept-fp32 modules round-trip exactly)
        source_bytes = tensor.to(torch.bfloat16).contiguous().view(torch.uint8).numpy()
        assert hashlib.sha1(source_bytes).hexdigest() == digests[official_key(name)], name


def test_a_forward_at_full_width_is_finite(transformer):
    with torch.no_grad():
        result = full_size.small_forward(transformer)
    assert result == {"video_velocity": (1, 16, 2, 8, 8), "text_logits": (1, 16, 256385), "finite": True}


def test_text_to_video_caption_and_joint_run_a_step(transformer):
    pipe = full_size.stand_in_pipeline(transformer)
    pipe.set_progress_bar_config(disable=True)
    vocab, mask_id = transformer.config.vocab_size, transformer.mask_token_id

    # guidance 1: one forward a step (the guided batch is the same code, tested at small size)
    out = pipe.text_to_video(
        "a red circle moves left", num_inference_steps=1, guidance_scale=1.0, seed=0, return_trajectory=True
    )
    assert out.frames.shape == (5, 32, 32, 3) and out.frames.dtype.name == "uint8"
    assert out.trajectory[0].video_x0.shape == (16, 2, 8, 8) and out.trajectory[0].video_x0.isfinite().all()

    out = pipe.caption(out.frames, num_inference_steps=1, seed=0, return_trajectory=True)
    step = out.trajectory[-1]
    # One step of the mask source reveals every position: 256 real ids, none left masked, confidences finite.
    assert len(step.text_ids) == transformer.config.max_text_len and mask_id not in step.text_ids
    assert all(0 <= i < vocab for i in step.text_ids) and all(0 <= c <= 1 for c in step.text_confidence)
    assert isinstance(out.text, str) and out.text == pipe.decode_text(step.text_ids)

    out = pipe.joint(
        "a blue square stays still", num_inference_steps=1, guidance_scale=1.0, seed=0, return_trajectory=True
    )
    step = out.trajectory[-1]
    assert out.frames.shape == (5, 32, 32, 3) and step.video_x0.isfinite().all()
    assert mask_id not in step.text_ids and out.text == pipe.decode_text(step.text_ids)


def _gpu_benchmark():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("gpu_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_benchmark_runs_its_code_paths_at_tiny_size(capsys):
    """``benchmarks/gpu.py`` exits cleanly without CUDA, and every measurement runs (tiny, CPU)."""
    gpu = _gpu_benchmark()
    if not torch.cuda.is_available():
        assert gpu.main([]) == 0 and "no CUDA device" in capsys.readouterr().out
    rows = {what: (value, notes) for what, value, notes in gpu.run("tiny", torch.device("cpu"))}
    assert float(rows["ratio UniViGU / Wan"][0]) > 0 and float(rows["ratio joint / Wan"][0]) > 0
    for mode in ("model", "sequential"):  # they need an accelerator, and say so
        assert rows[f"offload {mode}"][0] == "skipped" and "no GPU" in rows[f"offload {mode}"][1]
    for mode in ("none", "group", "group-leaf", "fp8"):
        assert rows[f"offload {mode}: step / peak VRAM"][0].endswith("n/a (CPU)")
    assert {"VAE decode untiled", "VAE decode tiled", "text-to-video, 2 steps, end to end"} <= set(rows)
    assert any(what.startswith("caption, 2 steps, end to end") for what in rows)
