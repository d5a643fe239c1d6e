"""Flows: path endpoints, samplers, embedding decoding, and the uni-flow loss."""

import pytest
import torch

from univigu import UniViGUTransformer
from univigu.flows import DiscreteTextFlow, EmbeddingTextFlow, UniFlowLoss, VideoFlow, sample_sigmas, to_timestep
from univigu.tiny import tiny_wan_config


def test_discrete_path_endpoints_mask_and_uniform():
    x1 = torch.randint(1, 30, (4, 50))
    for source in ("mask", "uniform"):
        flow = DiscreteTextFlow(30, source, pad_token_id=0)
        clean = flow.add_noise(x1, torch.zeros(4))  # sigma 0 = t 1: data
        assert torch.equal(clean, x1)
        noisy = flow.add_noise(x1, torch.ones(4), torch.Generator().manual_seed(0))  # sigma 1 = t 0: source
        if source == "mask":
            assert (noisy == 30).all()
        else:
            assert (noisy != 0).all() and noisy.max() < 30  # never the pad id, never out of vocabulary
            assert (noisy == x1).float().mean() < 0.2
        half = flow.add_noise(x1, torch.full((4,), 0.5), torch.Generator().manual_seed(1))
        assert 0.35 < (half == x1).float().mean() < 0.65 + (source == "uniform") * 0.1


def test_discrete_kappa_polynomial():
    flow = DiscreteTextFlow(10, exponent=2.0)
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(flow.kappa(t), torch.tensor([0.0, 0.25, 1.0]))


def test_discrete_sampler_last_step_takes_the_prediction():
    flow = DiscreteTextFlow(12, "mask")
    x_t = torch.full((2, 7), 12)
    x_t[0, 0] = 5  # an already revealed token stays
    logits = torch.randn(2, 7, 13)
    logits[..., 12] = 100.0  # the mask column is never predicted
    out = flow.step(x_t, logits, sigma=0.1, sigma_next=0.0)
    expected = logits[..., :12].argmax(-1)
    assert out[0, 0] == 5 and torch.equal(out[0, 1:], expected[0, 1:]) and torch.equal(out[1], expected[1])
    # A small step reveals only some positions.
    mid = flow.step(
        torch.full((2, 200), 12), torch.randn(2, 200, 13), 0.5, 0.4, generator=torch.Generator().manual_seed(0)
    )
    revealed = (mid != 12).float().mean()
    assert 0.1 < revealed < 0.3  # (k(0.6)-k(0.5))/(1-k(0.5)) = 0.2
    sampled = flow.step(
        torch.full((1, 50), 12),
        torch.randn(1, 50, 13),
        0.2,
        0.0,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert (sampled < 12).all()


def test_discrete_confidence_order_reveals_the_surest_masked_positions():
    flow = DiscreteTextFlow(12, "mask")
    x_t = torch.full((2, 10), 12)
    x_t[0, :2] = 3  # already revealed: kept, and not counted among the masked
    logits = torch.zeros(2, 10, 13)
    confidence = torch.tensor([[9.0, 9.0, 1, 2, 8, 3, 7, 4, 6, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    logits[torch.arange(2)[:, None], torch.arange(10), torch.arange(10) % 12] = confidence
    # sigma 0.5 -> 0.25 reveals half the masked positions: 4 of row 0's 8, 5 of row 1's 10
    out = flow.step(x_t, logits, 0.5, 0.25, order="confidence")
    revealed = out != 12
    assert torch.equal(out[0, :2], torch.tensor([3, 3]))
    assert revealed[0].nonzero().flatten().tolist() == [0, 1, 4, 6, 8, 9]  # confidences 8, 7, 6, 5
    assert revealed[1].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]
    # the revealed ids are the argmax proposals
    assert (out[1, 5:] == torch.arange(5, 10)).all() and (out[0, [4, 6, 8, 9]] == torch.tensor([4, 6, 8, 9])).all()
    # the last step reveals everything left; the random order is the default; uniform sources refuse it
    assert (flow.step(out, logits, 0.25, 0.0, order="confidence") != 12).all()
    with pytest.raises(ValueError, match="mask source"):
        DiscreteTextFlow(12, "uniform").step(x_t.clamp(max=11), logits, 0.5, 0.25, order="confidence")
    with pytest.raises(ValueError, match="order"):
        flow.step(x_t, logits, 0.5, 0.25, order="left-to-right")


def _logits(best: list[int], scores: list[float] | None = None, vocab: int = 13) -> torch.Tensor:
    """[1, L, vocab]: ``best[j]`` scores ``scores[j]`` (default 10 - j / 10: earlier is surer), token 7 scores 5."""
    logits = torch.zeros(1, len(best), vocab)
    logits[0, :, 7] = 5.0
    for j, b in enumerate(best):
        logits[0, j, b] = scores[j] if scores else 10.0 - j / 10
    return logits


def test_a_text_ends_once_words_then_an_end_then_pads():
    flow, M, EOS, PAD = DiscreteTextFlow(12, "mask", pad_token_id=0), 12, 1, 0
    ends = (EOS, PAD)
    # words at 0 and 3; the model is surest of an end at 1 and 2 (a short text's tail); 2 of 4 masked revealed
    x_t = torch.tensor([[5, M, M, 6, M, M]])
    logits = _logits([5, EOS, PAD, 6, 8, PAD])
    assert flow.step(x_t, logits, 0.5, 0.25, order="confidence")[0].tolist() == [5, EOS, PAD, 6, M, M]
    ended = flow.step(x_t, logits, 0.5, 0.25, order="confidence", end_token_ids=ends)
    assert ended[0].tolist() == [5, M, M, 6, 8, PAD]
    # a revealed end token makes every later position pad at once (1 of 4 masked revealed: the end)
    x_t = torch.tensor([[5, M, 6, M, M, M]])
    logits = _logits([5, 9, 6, EOS, 8, 8], scores=[10, 8, 10, 12, 8, 8])
    assert flow.step(x_t, logits, 0.75, 0.5, order="confidence")[0].tolist() == [5, M, 6, EOS, M, M]
    ended = flow.step(x_t, logits, 0.75, 0.5, order="confidence", end_token_ids=ends)
    assert ended[0].tolist() == [5, M, 6, EOS, PAD, PAD]
    # an end revealed in the same step as a later word gives way to its best word
    x_t, logits = torch.full((1, 6), M), _logits([5, EOS, 6, EOS, PAD, PAD])
    assert flow.step(x_t, logits, 0.25, 0.0)[0].tolist() == [5, EOS, 6, EOS, PAD, PAD]
    assert flow.step(x_t, logits, 0.25, 0.0, end_token_ids=ends)[0].tolist() == [5, 7, 6, EOS, PAD, PAD]
    # a uniform source has no masked positions: the rule does not apply
    uniform = DiscreteTextFlow(12, "uniform", pad_token_id=0)
    x_u = torch.tensor([[5, 3, 3, 6, 3, 3]])
    assert torch.equal(uniform.step(x_u, logits, 0.25, 0.0, end_token_ids=ends), uniform.step(x_u, logits, 0.25, 0.0))


def test_discrete_loss_is_cross_entropy_per_sample():
    flow = DiscreteTextFlow(5)
    x1 = torch.tensor([[1, 2], [3, 4]])
    perfect = torch.full((2, 2, 5), -50.0).scatter(-1, x1[..., None], 50.0)
    assert torch.allclose(flow.loss(perfect, x1), torch.zeros(2), atol=1e-6)
    uniform = torch.zeros(2, 2, 5)
    assert torch.allclose(flow.loss(uniform, x1), torch.full((2,), torch.log(torch.tensor(5.0))))


def test_embedding_decode_of_clean_latents_returns_tokens():
    codebook = torch.randn(40, 16)
    flow = EmbeddingTextFlow(codebook)
    ids = torch.randint(0, 40, (3, 9))
    decoded, conf = flow.decode(flow.encode(ids))
    assert torch.equal(decoded, ids) and (conf > 0.5).all()
    # Noise at sigma 1 decodes to (mostly) other tokens; the exact velocity recovers x1 in one Euler step.
    x1 = flow.encode(ids)
    noise = torch.randn_like(x1)
    x_t = flow.add_noise(x1, noise, torch.ones(3))
    assert (flow.decode(x_t)[0] == ids).float().mean() < 0.5
    stepped = flow.step(x_t, flow.target(x1, noise), 1.0, 0.0)
    assert torch.equal(flow.decode(stepped)[0], ids)


def test_video_flow_path_and_x0():
    x0, noise = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4)
    sigma = torch.tensor([0.0, 1.0])
    x = VideoFlow.add_noise(x0, noise, sigma)
    assert torch.equal(x[0], x0[0]) and torch.equal(x[1], noise[1])
    s = torch.tensor([0.3, 0.7])
    x = VideoFlow.add_noise(x0, noise, s)
    torch.testing.assert_close(VideoFlow.predict_x0(x, VideoFlow.target(x0, noise), s), x0)
    assert torch.equal(to_timestep(torch.tensor([0.25])), torch.tensor([250.0]))
    sig = sample_sigmas(10000, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert 0 <= sig.min() and sig.max() <= 1 and sig.mean() > 0.6  # shift > 1 favours high noise


def test_video_loss_weights_each_latent():
    """A weighted video loss is each sample's weighted mean: uniform weights give the plain mean, and an error
    where the weight is high costs more than the same error where it is low."""
    target = torch.zeros(2, 4, 3, 4, 4)
    plain = torch.randn(2, 4, 3, 4, 4)
    torch.testing.assert_close(
        VideoFlow.loss(plain, target, torch.full((2, 1, 3, 4, 4), 7.0)), VideoFlow.loss(plain, target)
    )
    weight = torch.ones(2, 1, 3, 4, 4)
    weight[:, :, :, :2] = 11.0  # the upper half of each frame
    upper, lower = torch.zeros_like(target), torch.zeros_like(target)
    upper[:, :, :, 0, 0], lower[:, :, :, 3, 3] = 1.0, 1.0
    total = 4 * (8 * 11 + 8) * 3  # channels x (8 weighted + 8 plain positions) x frames
    torch.testing.assert_close(VideoFlow.loss(upper, target, weight), torch.full((2,), 4 * 3 * 11 / total))
    torch.testing.assert_close(VideoFlow.loss(lower, target, weight), torch.full((2,), 4 * 3 * 1 / total))
    # through the objective: prepare carries the weights to the loss
    wan = UniViGUTransformer(**tiny_wan_config())
    latents, cond = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 5, wan.config.text_dim)
    objective = UniFlowLoss(video_shift=3.0)
    inputs, targets = objective.prepare(
        wan, latents, None, cond, generator=torch.Generator().manual_seed(0), video_weight=weight
    )
    assert targets.video_weight is weight
    out = type("Out", (), {"video_velocity": lower + targets.video})()
    torch.testing.assert_close(objective.loss(out, targets).video_loss, torch.tensor(4 * 3 / total))


@pytest.mark.parametrize("formulation", ["discrete", "embedding"])
def test_uniflow_loss_lambda_and_independent_times(formulation):
    torch.manual_seed(0)
    model = UniViGUTransformer(
        **tiny_wan_config(), text_formulation=formulation, vocab_size=20, text_source="mask", text_latent_dim=16
    )
    latents = torch.randn(4, 4, 3, 4, 6)
    ids = torch.randint(1, 20, (4, 9))
    cond = torch.randn(4, 5, 32)
    loss_fn = UniFlowLoss()
    out = loss_fn(model, latents, ids, cond, generator=torch.Generator().manual_seed(0))
    assert out.lambda_text == pytest.approx((3 * 2 * 3) / 9)
    assert not torch.allclose(out.sigma_video, out.sigma_text)
    torch.testing.assert_close(out.loss, out.video_loss + out.lambda_text * out.text_loss)
    out.loss.backward()
    assert model.text_proj_out.weight.grad.abs().sum() > 0 and model.proj_out.weight.grad.abs().sum() > 0
    fixed = UniFlowLoss(lambda_text=0.5)(model, latents, ids, cond, generator=torch.Generator().manual_seed(0))
    assert fixed.lambda_text == 0.5
    # Dropped text contributes no text loss.
    dropped = loss_fn(
        model, latents, ids, cond, drop_text=torch.ones(4, dtype=torch.bool), generator=torch.Generator().manual_seed(0)
    )
    assert dropped.text_loss == 0
    with pytest.raises(ValueError, match="lambda_text"):
        UniFlowLoss(lambda_text=-1)


def _discrete_batch():
    """A tiny discrete-text model and a batch of 8: latents, ids, prompt embeddings."""
    torch.manual_seed(0)
    model = UniViGUTransformer(**tiny_wan_config(), text_formulation="discrete", vocab_size=20, text_source="mask")
    return model, torch.randn(8, 4, 3, 4, 6), torch.randint(1, 20, (8, 9)), torch.randn(8, 5, 32)


def test_uniflow_loss_holds_a_share_of_videos_clean():
    """video_clean_prob: those rows see noise level 0 (the captioning condition) and add no video loss."""
    model, latents, ids, cond = _discrete_batch()
    loss_fn = UniFlowLoss(video_clean_prob=0.5)
    out = loss_fn(model, latents, ids, cond, generator=torch.Generator().manual_seed(1))
    clean = out.sigma_video == 0
    assert 0 < clean.sum() < 8 and (out.sigma_text > 0).all()
    paper = UniFlowLoss()(model, latents, ids, cond, generator=torch.Generator().manual_seed(1))
    assert (paper.sigma_video > 0).all()
    # Rows are independent, so blowing up the clean rows' clips changes nothing if they add no video loss.
    louder = latents.clone()
    louder[clean] *= 100
    again = loss_fn(model, louder, ids, cond, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.sigma_video, out.sigma_video)
    torch.testing.assert_close(again.video_loss, out.video_loss)
    assert not torch.allclose(again.text_loss, out.text_loss)  # but their text is still learned from the clip
    with pytest.raises(ValueError, match="video_clean_prob"):
        UniFlowLoss(video_clean_prob=1.0)


def test_uniflow_loss_holds_a_share_of_texts_clean():
    """text_clean_prob: those rows see clean text (the text-to-video condition) and add no text loss; a row's
    video and text are never both held clean."""
    model, latents, ids, cond = _discrete_batch()
    loss_fn = UniFlowLoss(text_clean_prob=0.5)
    out = loss_fn(model, latents, ids, cond, generator=torch.Generator().manual_seed(1))
    clean = out.sigma_text == 0
    assert 0 < clean.sum() < 8 and (out.sigma_video > 0).all()
    # Other ids in the clean rows leave the text loss alone (it skips them) but not the video loss (it reads them).
    other = ids.clone()
    other[clean] = (other[clean] % 19) + 1
    again = loss_fn(model, latents, other, cond, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.sigma_text, out.sigma_text)
    torch.testing.assert_close(again.text_loss, out.text_loss)
    assert not torch.allclose(again.video_loss, out.video_loss)
    both = UniFlowLoss(video_clean_prob=0.5, text_clean_prob=0.9)
    out = both(model, latents, ids, cond, generator=torch.Generator().manual_seed(2))
    assert (out.sigma_text == 0).any() and (out.sigma_video == 0).any()
    assert not ((out.sigma_text == 0) & (out.sigma_video == 0)).any()
    with pytest.raises(ValueError, match="text_clean_prob"):
        UniFlowLoss(text_clean_prob=-0.1)


def test_uniflow_loss_takes_the_clean_rows_it_is_given():
    """A caller that drew the clean rows first (draw_clean) passes them in: exactly those rows are held."""
    model, latents, ids, cond = _discrete_batch()
    loss_fn = UniFlowLoss(video_clean_prob=0.4, text_clean_prob=0.5)
    clean_video, clean_text = loss_fn.draw_clean(8, torch.Generator().manual_seed(3))
    assert clean_video.any() and clean_text.any() and not (clean_video & clean_text).any()
    gen = torch.Generator().manual_seed(1)
    out = loss_fn(model, latents, ids, cond, generator=gen, clean=(clean_video, clean_text))
    assert torch.equal(out.sigma_video == 0, clean_video) and torch.equal(out.sigma_text == 0, clean_text)
