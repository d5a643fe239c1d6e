"""Offload options on a CPU-only machine: the ones that can run give the same clip; the others say why not."""

import numpy as np
import pytest
import torch

from univigu.offload import apply_offload, dtype_requirements, offload_requirements
from univigu.tiny import tiny_pipeline

PROMPT = "a red circle moves left"


@pytest.fixture(scope="module")
def reference():
    return tiny_pipeline().joint(PROMPT, num_inference_steps=2, seed=4)


@pytest.mark.parametrize("mode", ["group", "group-leaf"])
def test_group_offload_on_cpu_matches(reference, mode):
    pipe = apply_offload(tiny_pipeline(), mode, "cpu", vae_tiling=True, vae_slicing=True, text_encoder_on_cpu=True)
    out = pipe.joint(PROMPT, num_inference_steps=2, seed=4)
    assert np.array_equal(out.frames, reference.frames) and out.text == reference.text


def test_fp8_layerwise_storage_computes_with_the_rounded_weights():
    pipe = apply_offload(tiny_pipeline(), "fp8", "cpu", dtype=torch.float32)
    assert pipe.transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn
    stored = {n for n, p in pipe.transformer.named_parameters() if p.dtype == torch.float8_e4m3fn}
    # the same model with exactly those weights rounded to fp8 in place, computed in fp32
    rounded, original = tiny_pipeline(), tiny_pipeline().transformer.state_dict()
    assert len(stored) > 10
    with torch.no_grad():
        for name, param in rounded.transformer.named_parameters():
            if name in stored:
                param.copy_(param.to(torch.float8_e4m3fn).float())
    assert any(not torch.equal(rounded.transformer.state_dict()[n], original[n]) for n in stored)  # fp8 rounds
    out = pipe.joint(PROMPT, num_inference_steps=2, seed=4)
    expected = rounded.joint(PROMPT, num_inference_steps=2, seed=4)
    assert np.array_equal(out.frames, expected.frames) and out.text == expected.text


@pytest.mark.parametrize("mode", ["model", "sequential"])
def test_accelerator_modes_explain_themselves_on_cpu(mode):
    assert "no GPU" in offload_requirements(mode, "cpu")
    with pytest.raises(ValueError, match="no GPU"):
        apply_offload(tiny_pipeline(), mode, "cpu")
    assert offload_requirements("none", "cpu") is None
    assert "unknown offload mode" in offload_requirements("turbo", "cpu")
    assert "float16" in dtype_requirements("float16", "cpu") and dtype_requirements("bfloat16", "cpu") is None
