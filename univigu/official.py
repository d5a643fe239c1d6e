"""Loading the authors' released Uni-ViGU checkpoint (``{"model": state_dict, ...}``) into UniViGU.

The release names its modules differently (``time_embedding_v``, ``video_head.proj_out``, ...); this
module maps every released key onto ours, strictly: a missing or unexpected key is an error that
names it. Conventions (see ``shared/fixtures/official_tiny/README.md``): the released model rounds its
time embeddings to bfloat16, so converted models set ``time_embedding_rounding="bfloat16"`` unless asked
not to; the released ``rotary_emb_text.inv_freq`` buffer is checked against the 1-D RoPE we compute.
"""

import os

import torch

from .models import UniViGUTransformer

# Released prefix -> our prefix. Keys under ``blocks.`` and ``patch_embedding.`` are identical.
_PREFIX_MAP = (
    ("time_embedding_v.", "condition_embedder."),
    ("time_embedding_t.", "text_time_embedder."),
    ("cond_text_embedder.", "condition_embedder.text_embedder."),
    ("video_head.proj_out.", "proj_out."),
    ("text_head.norm_final.", "text_norm_out."),
    ("text_head.linear.", "text_proj_out."),
    ("vocab_embed.", "text_embedding."),
    ("scale_shift_table_v", "scale_shift_table"),
    ("scale_shift_table_t", "text_scale_shift_table"),
    ("blocks.", "blocks."),
    ("patch_embedding.", "patch_embedding."),
)
_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_orig_mod.", "module.")
_TEXT_ROPE_BUFFER = "rotary_emb_text.inv_freq"


class CheckpointError(ValueError):
    """A checkpoint that is not a Uni-ViGU release, or does not fit the given Wan configuration."""


def load_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a released ``.pth`` safely (``weights_only=True``) and strip FSDP/compile wrappers."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling failures come in many types
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch checkpoint ({type(err).__name__}: {err}). "
            "Pass the authors' released .pth file ({'model': state_dict, 'step': int})."
        ) from err
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected {{'model': state_dict, ...}})")
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.replace(prefix, "")
        out[key] = value
    return out


def convert_official_state_dict(state: dict[str, torch.Tensor], head_dim: int) -> dict[str, torch.Tensor]:
    """Rename released keys to ours. Raises :class:`CheckpointError` listing keys it does not know."""
    converted, unknown = {}, []
    for key, value in state.items():
        if key == _TEXT_ROPE_BUFFER:
            expected = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
            if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-5):
                raise CheckpointError(f"{key} does not match a 1-D RoPE of head dim {head_dim}")
            continue
        for theirs, ours in _PREFIX_MAP:
            if key.startswith(theirs):
                converted[ours + key[len(theirs) :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"not a Uni-ViGU release key: {', '.join(sorted(unknown)[:10])}")
    return converted


def transformer_from_official(
    checkpoint: str | os.PathLike,
    wan_config: dict,
    vocab_size: int | None = None,
    text_source: str | None = None,
    pad_token_id: int = 0,
    max_text_len: int = 256,
    bf16_time_embedding: bool = True,
) -> UniViGUTransformer:
    """Build a :class:`UniViGUTransformer` from a released checkpoint and the base Wan config.

    The released text head has ``vocab_size`` rows, or ``vocab_size + 1`` when it was trained with a
    mask source. Give ``vocab_size`` or ``text_source`` to tell which; with neither, an uneven choice
    is refused rather than guessed.
    """
    state = convert_official_state_dict(load_official_state_dict(checkpoint), wan_config["attention_head_dim"])
    if "text_proj_out.weight" not in state:
        raise CheckpointError("the checkpoint has no text head (text_head.linear.weight): not a Uni-ViGU release")
    rows = state["text_proj_out.weight"].shape[0]
    if vocab_size is None and text_source is None:
        raise CheckpointError(
            f"the text head has {rows} rows: pass vocab_size (the tokenizer's) or text_source "
            f"('uniform' = {rows} tokens, 'mask' = {rows - 1} tokens + the mask id)"
        )
    if vocab_size is None:
        vocab_size = rows - (text_source == "mask")
    if text_source is None:
        text_source = {vocab_size: "uniform", vocab_size + 1: "mask"}.get(rows)
    if rows != vocab_size + (text_source == "mask"):
        raise CheckpointError(f"text head has {rows} rows, which fits neither vocab_size {vocab_size} nor +1 mask row")
    config = {k: wan_config[k] for k in UniViGUTransformer.WAN_CONFIG_KEYS if k in wan_config}
    model = UniViGUTransformer(
        **config,
        text_formulation="discrete",
        vocab_size=vocab_size,
        text_source=text_source,
        pad_token_id=pad_token_id,
        max_text_len=max_text_len,
        time_embedding_rounding="bfloat16" if bf16_time_embedding else None,
    )
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            "checkpoint does not fit the Wan config"
            + (f"; missing: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "") if missing else "")
            + (f"; unexpected: {', '.join(unexpected[:10])}" if unexpected else "")
        )
    bad = [k for k in ours if ours[k].shape != state[k].shape]
    if bad:
        raise CheckpointError(
            "shape mismatch (wrong Wan config?): "
            + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in bad[:5])
        )
    model.load_state_dict(state, strict=True)
    return model
