"""UniViGUTransformer: shapes, routing, masking, time independence, Wan composition, diffusers machinery."""

import pytest
import torch
from diffusers import WanTransformer3DModel

from univigu import UniViGUTransformer
from univigu.models import append_positions
from univigu.tiny import tiny_wan_config

V = 20


def make(text_formulation="discrete", text_source="uniform", seed=0, **kw) -> UniViGUTransformer:
    torch.manual_seed(seed)
    model = UniViGUTransformer(
        **tiny_wan_config(),
        text_formulation=text_formulation,
        vocab_size=V,
        text_source=text_source,
        text_latent_dim=16,
        **kw,
    )
    # Random heads/tables so every path carries signal.
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2) if p.ndim > 0 else None
    return model.eval()


def inputs(batch=2, length=6, seed=1, grid=(3, 4, 6)):
    g = torch.Generator().manual_seed(seed)
    return dict(
        video_latents=torch.randn(batch, 4, *grid, generator=g),
        video_timestep=torch.tensor([250.0, 900.0][:batch]),
        encoder_hidden_states=torch.randn(batch, 5, 32, generator=g),
        text_timestep=torch.tensor([700.0, 100.0][:batch]),
        text_tokens=torch.randint(1, V, (batch, length), generator=g),
    )


@torch.no_grad()
def test_shapes_and_dtypes_both_formulations():
    out = make()(**inputs())
    assert out.video_velocity.shape == (2, 4, 3, 4, 6) and out.video_velocity.dtype == torch.float32
    assert out.text_logits.shape == (2, 6, V) and out.text_velocity is None
    masked = make(text_source="mask")
    assert masked(**inputs()).text_logits.shape == (2, 6, V + 1)
    assert masked.mask_token_id == V
    emb = make("embedding")
    x = inputs()
    del x["text_tokens"]
    out = emb(**x, text_latents=torch.randn(2, 6, 16))
    assert out.text_velocity.shape == (2, 6, 16) and out.text_logits is None
    bf16 = make().to(torch.bfloat16)
    x = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in inputs().items()}
    assert bf16(**x).video_velocity.dtype == torch.bfloat16


@torch.no_grad()
def test_padded_text_tokens_change_nothing():
    model, x = make(), inputs(length=8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    ref = model(**x, text_attention_mask=mask)
    x2 = dict(x, text_tokens=x["text_tokens"].clone())
    x2["text_tokens"][1, 5:] = torch.tensor([3, 4, 5])
    out = model(**x2, text_attention_mask=mask)
    assert torch.equal(ref.video_velocity, out.video_velocity)
    assert torch.equal(ref.text_logits[1, :5], out.text_logits[1, :5])
    # ...and trimming the padded columns away is exact for the remaining tokens.
    x3 = dict(x, text_tokens=x["text_tokens"][1:, :5])
    x3.update(
        video_latents=x["video_latents"][1:],
        video_timestep=x["video_timestep"][1:],
        encoder_hidden_states=x["encoder_hidden_states"][1:],
        text_timestep=x["text_timestep"][1:],
    )
    trimmed = model(**x3)
    torch.testing.assert_close(trimmed.video_velocity, ref.video_velocity[1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trimmed.text_logits, ref.text_logits[1:, :5], atol=1e-5, rtol=1e-5)
    # An unmasked change does reach the video (the test above can fail).
    x4 = dict(x, text_tokens=x2["text_tokens"])
    assert not torch.allclose(model(**x4).video_velocity, model(**x).video_velocity)


@torch.no_grad()
def test_ffn_routing_by_modality():
    model, x = make(), inputs(length=6)
    seen = {"ffn": [], "ffn_t": []}
    hooks = [
        getattr(block, name).register_forward_hook(lambda m, a, o, name=name: seen[name].append(a[0].shape[1]))
        for block in model.blocks
        for name in ("ffn", "ffn_t")
    ]
    model(**x)
    for h in hooks:
        h.remove()
    num_video = 3 * 2 * 3
    assert seen["ffn"] == [num_video] * 2 and seen["ffn_t"] == [6] * 2
    # Perturbing FFN_t moves the text output but, within block 1's FFN, not the video output of that block.
    ref = model(**x)
    with torch.no_grad():
        model.blocks[-1].ffn_t.net[2].bias.add_(1.0)
    out = model(**x)
    assert torch.equal(ref.video_velocity, out.video_velocity)
    assert not torch.allclose(ref.text_logits, out.text_logits)


@torch.no_grad()
def test_video_and_text_timesteps_are_independent():
    model, x = make(), inputs()
    ref = model(**x)
    moved_text = model(**dict(x, text_timestep=torch.tensor([10.0, 990.0])))
    moved_video = model(**dict(x, video_timestep=torch.tensor([10.0, 990.0])))
    assert not torch.allclose(ref.text_logits, moved_text.text_logits)
    assert not torch.allclose(ref.video_velocity, moved_video.video_velocity)
    # Each time embedder is its own module: zeroing the text one leaves the video one's weights as they were.
    video_embedder = {k: v.clone() for k, v in model.condition_embedder.state_dict().items()}
    for p in model.text_time_embedder.parameters():
        p.zero_()
    assert all(torch.equal(v, model.condition_embedder.state_dict()[k]) for k, v in video_embedder.items())
    assert not torch.allclose(model(**x).text_logits, ref.text_logits)


@torch.no_grad()
def test_from_wan_keeps_the_generator_and_copies_ffn():
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**tiny_wan_config()).eval()
    for p in wan.parameters():
        torch.nn.init.normal_(p, std=0.2)
    uni = UniViGUTransformer.from_wan(wan, vocab_size=V, text_source="mask").eval()
    x = inputs()
    ref = wan(x["video_latents"], x["video_timestep"], x["encoder_hidden_states"]).sample
    # With the text stream fully masked, the unified model is exactly Wan.
    out = uni(**x, text_attention_mask=torch.zeros(2, 6, dtype=torch.bool))
    torch.testing.assert_close(out.video_velocity, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(uni.blocks[0].ffn_t.net[0].proj.weight, uni.blocks[0].ffn.net[0].proj.weight)
    assert torch.count_nonzero(uni.text_proj_out.weight) == 0
    fresh = UniViGUTransformer.from_wan(wan, ffn_t_init="random", vocab_size=V)
    assert not torch.equal(fresh.blocks[0].ffn_t.net[0].proj.weight, fresh.blocks[0].ffn.net[0].proj.weight)
    with pytest.raises(ValueError, match="ffn_t_init"):
        UniViGUTransformer.from_wan(wan, ffn_t_init="zeros", vocab_size=V)


def test_position_channels_are_coordinate_maps():
    latents = torch.randn(2, 4, 3, 4, 6)
    x = append_positions(latents, 3)
    assert x.shape == (2, 7, 3, 4, 6) and torch.equal(x[:, :4], latents)
    t, h, w = x[0, 4], x[0, 5], x[0, 6]
    torch.testing.assert_close(t[:, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(h[0, :, 0], torch.linspace(-1, 1, 4))
    torch.testing.assert_close(w[0, 0], torch.linspace(-1, 1, 6))
    assert torch.equal(t, t[:, :1, :1].expand_as(t)) and torch.equal(w, w[:1, :1].expand_as(w))
    assert torch.equal(append_positions(latents, 2), x[:, [0, 1, 2, 3, 5, 6]])
    assert append_positions(latents, 0) is latents
    with pytest.raises(ValueError, match="position channels"):
        append_positions(latents, 4)


@torch.no_grad()
def test_from_wan_keeps_position_channels():
    """A Wan generator trained on latents + coordinate maps becomes a UniViGU model taking the latents alone:
    it appends the maps itself and predicts what Wan predicted from the maps appended by hand."""
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**dict(tiny_wan_config(), in_channels=7, out_channels=4)).eval()
    for p in wan.parameters():
        torch.nn.init.normal_(p, std=0.2)
    uni = UniViGUTransformer.from_wan(wan, position_channels=3, vocab_size=V).eval()
    assert uni.config.in_channels == 4 and uni.config.position_channels == 3
    x = inputs()
    ref = wan(append_positions(x["video_latents"], 3), x["video_timestep"], x["encoder_hidden_states"]).sample
    out = uni(**x, text_attention_mask=torch.zeros(2, 6, dtype=torch.bool))
    torch.testing.assert_close(out.video_velocity, ref, atol=1e-5, rtol=1e-5)
    # The maps matter: the same weights fed zeros where the coordinates go predict something else.
    zeros = wan(
        torch.cat([x["video_latents"], torch.zeros(2, 3, 3, 4, 6)], 1), x["video_timestep"], x["encoder_hidden_states"]
    ).sample
    assert not torch.allclose(zeros, ref, atol=1e-3)
    with pytest.raises(ValueError, match="position channels"):
        UniViGUTransformer.from_wan(wan, position_channels=2, vocab_size=V)
    with pytest.raises(ValueError, match="position channels"):
        UniViGUTransformer.from_wan(wan, vocab_size=V)


def test_save_load_round_trip(tmp_path):
    model = make(text_source="mask")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = UniViGUTransformer.from_pretrained(tmp_path).eval()
    assert loaded.config.text_source == "mask" and loaded.config.vocab_size == V
    with torch.no_grad():
        a, b = model(**inputs()), loaded(**inputs())
    assert torch.equal(a.video_velocity, b.video_velocity) and torch.equal(a.text_logits, b.text_logits)


def test_gradient_checkpointing_gives_same_gradients():
    model, x = make().train(), inputs()

    def loss():
        out = model(**x)
        return out.video_velocity.square().mean() + out.text_logits.logsumexp(-1).mean()

    loss().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    loss().backward()
    for a, p in zip(ref, model.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_group_offload_layerwise_casting_and_attention_backend():
    x = inputs()
    ref = make()(**x)
    offloaded = make()
    offloaded.enable_group_offload(torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1)
    torch.testing.assert_close(offloaded(**x).video_velocity, ref.video_velocity)
    native = make()
    native.set_attention_backend("native")
    assert native.blocks[0].attn1.processor._attention_backend.value == "native"
    torch.testing.assert_close(native(**x).video_velocity, ref.video_velocity)
    cast = make()
    cast.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert cast.blocks[0].ffn_t.net[2].weight.dtype == torch.float8_e4m3fn
    assert cast.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32  # skipped pattern
    out = cast(**x).video_velocity
    assert torch.isfinite(out).all()
    rel = (out - ref.video_velocity).norm() / ref.video_velocity.norm()
    assert 0 < rel < 0.5  # fp8 storage perturbs, but stays the same function


def test_bad_inputs_raise_clear_errors():
    model, x = make(), inputs()
    with pytest.raises(ValueError, match="video_latents must be"):
        model(**dict(x, video_latents=torch.randn(2, 3, 3, 4, 6)))
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        model(**dict(x, video_latents=torch.randn(2, 4, 3, 5, 6)))
    with pytest.raises(ValueError, match="integer tensor"):
        model(**dict(x, text_tokens=torch.randn(2, 6)))
    with pytest.raises(ValueError, match="batch"):
        model(**dict(x, text_tokens=x["text_tokens"][:1]))
    with pytest.raises(ValueError, match="text_attention_mask"):
        model(**x, text_attention_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="text_formulation"):
        UniViGUTransformer(text_formulation="continuous")
