"""FSDP2 training on two CPU processes (gloo), launched as on a GPU node: ``accelerate launch --config_file
training/configs/fsdp.yaml -m training.train``."""

import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_training import ROOT, TINY_MODEL, _losses, launch_training

from training import train as train_mod

SHIPPED = ROOT / "assets" / "univigu-shapesworld"  # its tokenizer, text encoder and VAE make the cache


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4-clip latent cache made with the shipped model's components."""
    from training.data import precompute
    from training.shapesworld import export_dataset

    root = tmp_path_factory.mktemp("fsdp")
    export_dataset(root / "data", "train", 4)
    precompute(str(root / "data"), str(SHIPPED), str(root / "cache.safetensors"))
    return root


def _args(root, out: str, *extra: str) -> list[str]:
    """Stage 1 of a fresh tiny UniViGU (blocks: UniViGUBlock), 20 steps, a checkpoint every 10."""
    return [
        f"--config={ROOT / 'training' / 'configs' / 'recall.yaml'}",
        "--init=random",
        f"--cache={root / 'cache.safetensors'}",
        f"--components={SHIPPED}",
        f"--out_dir={root / out}",
        "--batch_size=2",
        "--val_every=0",
        "--warmup_steps=2",
        "--max_steps=20",
        "--ckpt_every=10",
        "--lr=3e-3",
        *TINY_MODEL,
        *extra,
    ]


def _launch_fsdp(args: list[str]) -> subprocess.CompletedProcess:
    return launch_training(["--config_file", str(ROOT / "training" / "configs" / "fsdp.yaml")], args, timeout=300)


def test_fsdp_matches_one_process_and_resumes_exactly(run):
    # 1. The same global batch of 4: two processes x 2 rows, or one process x 2 rows x 2 micro-batches
    train_mod.train(train_mod.load_config(_args(run, "one", "--grad_accum=2")))
    _launch_fsdp(_args(run, "fsdp"))
    one, fsdp = _losses(run / "one"), _losses(run / "fsdp")
    assert len(fsdp) == 20 and fsdp[-1] < 0.5 * fsdp[0]  # it trains
    np.testing.assert_allclose(fsdp, one, rtol=1e-5, atol=0)

    # 2. Sharded checkpoints: each process wrote its part of the weights and of the optimizer state
    ckpt = run / "fsdp" / "checkpoint-10"
    full_size = (ckpt / "model" / "diffusion_pytorch_model.safetensors").stat().st_size
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        shards = sorted((ckpt / "state" / part).glob("*.distcp"))
        assert [p.name for p in shards] == ["__0_0.distcp", "__1_0.distcp"], part
    assert all(p.stat().st_size < 0.75 * full_size for p in (ckpt / "state" / "pytorch_model_fsdp_0").glob("*.distcp"))
    assert not (ckpt / "state" / "model.safetensors").exists()  # not DDP's whole-model file

    # 3. The gathered model (final/, what the next stage loads) is the one-process model
    a = load_file(str(run / "fsdp" / "final" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(run / "one" / "final" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)

    # 4. Killed after step 10: resuming from the sharded checkpoint logs the unbroken run's losses, bit for bit
    (run / "resumed").mkdir()
    shutil.copytree(ckpt, run / "resumed" / "checkpoint-10")
    shutil.copy(run / "fsdp" / "metrics.jsonl", run / "resumed" / "metrics.jsonl")
    proc = _launch_fsdp(_args(run, "resumed"))
    assert "resumed from" in proc.stdout + proc.stderr
    assert _losses(run / "resumed") == fsdp


def test_fsdp_memory_counts_the_full_model_and_shards_it():
    """The numbers the README's multi-GPU table quotes (benchmarks/fsdp_memory.py), from the real architecture."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fsdp_memory", ROOT / "benchmarks" / "fsdp_memory.py")
    fsdp_memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fsdp_memory)
    report = fsdp_memory.memory(gpus=8)
    # 30 blocks with FFN_t + a 256,385-row embedding and text head (mask source) at hidden 1536
    assert report["parameters"] == 3_049_861_569 and report["blocks"] == 30
    assert report["parameters"] == 30 * report["parameters_per_block"] + report["parameters_outside_blocks"]
    assert report["parameters_outside_blocks"] > 2 * 256_385 * 1536
    # every GPU holds ceil(rows / 8) rows of each tensor: an eighth, plus under 0.1% of padding
    per_gpu = report["parameters_per_gpu"]
    assert report["parameters"] / 8 <= per_gpu < 1.001 * report["parameters"] / 8
    assert report["persistent_total"] == (4 + 4 + 8) * per_gpu  # fp32 weights, gradients, two AdamW moments
    assert "**5.68**" in fsdp_memory.table(report)
