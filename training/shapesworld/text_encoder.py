"""The ShapesWorld text encoder: a small UMT5 pretrained on the dataset's sentences, then frozen.

A 2-layer UMT5 (d_model 64) pretrained for a minute with masked-word prediction on the dataset's prompts and
captions, so its outputs carry each word's context (which colour goes with which shape) rather than random
features. Frozen afterwards, as Wan freezes its UMT5.
"""

import math

import torch
import torch.nn.functional as F
from transformers import UMT5Config, UMT5EncoderModel


def build_text_encoder(vocab_size: int, d_model: int = 64, num_layers: int = 2, num_heads: int = 4) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
    )
    return UMT5EncoderModel(config)


def pretrain_text_encoder(
    encoder: UMT5EncoderModel,
    tokenizer,
    texts: list[str],
    steps: int = 400,
    batch_size: int = 64,
    lr: float = 3e-3,
    mask_prob: float = 0.3,
    seed: int = 0,
    context: int = 0,
) -> list[float]:
    """Train ``encoder`` in place to predict masked words (``<unk>`` is the mask); returns the losses.

    ``context > 0`` adds two self-supervised tasks at every real position: name the words ``context`` places
    before and after it, and its own place in the sentence. Wan's cross-attention reads the prompt as a set
    of feature vectors with no order, so a feature must carry its context itself: with masked words alone a
    small encoder gives "left" in "at the top left" and in "moves left" nearly the same vector (cosine 0.95),
    and "at the top left moves right" the same set as "at the top right moves left".
    """
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids, attn = enc.input_ids, enc.attention_mask
    length, d_model, vocab = ids.shape[1], encoder.config.d_model, len(tokenizer)
    offsets = [o for o in range(-context, context + 1) if o != 0]
    head = torch.nn.Linear(d_model, vocab)
    params = list(encoder.parameters()) + list(head.parameters())
    if offsets:
        with torch.random.fork_rng():  # what is built after the text encoder does not depend on ``context``
            context_head = torch.nn.Linear(d_model, vocab * len(offsets) + length)
        params += list(context_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # Targets for the context tasks: the word at each offset (the pad id past either end) and the position
    padded = F.pad(ids, (context, context), value=tokenizer.pad_token_id)
    neighbours = [padded[:, context + o : context + o + length] for o in offsets]
    neighbours = torch.stack(neighbours, -1) if offsets else None  # [N, L, 2 * context]
    losses = []
    encoder.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(ids), (batch_size,), generator=gen)
        x, a = ids[idx], attn[idx]
        masked = (torch.rand(x.shape, generator=gen) < mask_prob) & a.bool()
        inputs = torch.where(masked, torch.full_like(x, tokenizer.unk_token_id), x)
        hidden = encoder(inputs, attention_mask=a).last_hidden_state
        loss = F.cross_entropy(head(hidden)[masked], x[masked])
        if offsets:
            real = a.bool()
            out = context_head(hidden[real])
            words = out[:, : vocab * len(offsets)].reshape(-1, len(offsets), vocab)
            place = torch.arange(length).expand_as(x)[real]
            loss = loss + F.cross_entropy(words.flatten(0, 1), neighbours[idx][real].flatten())
            loss = loss + F.cross_entropy(out[:, vocab * len(offsets) :], place)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    encoder.eval().requires_grad_(False)
    return losses
