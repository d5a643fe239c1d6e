"""The authors' released Uni-ViGU checkpoint (``{"model": state_dict, ...}``): read, check, convert.

The release names its modules differently (``time_embedding_v``, ``video_head.proj_out``, ...); this
module maps every released key onto ours, strictly: a missing or unexpected key is an error that
names it. Conventions (see ``tests/fixtures/official_tiny/README.md``): the released model rounds its
time embeddings to bfloat16, so converted models set ``time_embedding_rounding="bfloat16"`` unless asked
not to; the released ``rotary_emb_text.inv_freq`` buffer is checked against the 1-D RoPE we compute.

Memory: the checkpoint is memory-mapped (``torch.load(mmap=True, weights_only=True)``) and the model it
is checked against is built on the meta device, so nothing is materialised until a tensor is written.
:func:`write_official_transformer` streams the weights shard by shard into diffusers' sharded
safetensors layout, re-mapping the file for each shard so the pages read for one shard are released
before the next: peak memory is about one shard, not the checkpoint.
"""

import json
import os
import pickle
import re
import warnings
import zipfile

import torch
from accelerate import init_empty_weights
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors import SafetensorError
from safetensors.torch import save_file

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

# diffusers' names for a model's weights (``ModelMixin.save_pretrained``): one file, or shards + an index.
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
WEIGHTS_PATTERN = "diffusion_pytorch_model{suffix}.safetensors"
MAX_SHARD_SIZE = "1GB"  # small shards keep both conversion and loading at about one shard of extra memory


class CheckpointError(ValueError):
    """A checkpoint that is not a Uni-ViGU release, or does not fit the given Wan configuration."""


def _mappable(path: str | os.PathLike) -> bool:
    """Whether ``torch.load(mmap=True)`` can map ``path``: torch's zip format, complete (with its end record)."""
    return zipfile.is_zipfile(path)


def _read(path: str | os.PathLike):
    """``torch.load`` with weights only, memory-mapped when the file is in torch's zip format; one-line errors."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        zip_magic = f.read(4) == b"PK\x03\x04"  # torch.save's format
    try:
        with warnings.catch_warnings():  # a malformed file's warnings only precede the error below
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_mappable(path))
    except Exception as err:  # unpickling failures come in many types, and torch's messages run to paragraphs
        if _holds_code(err):
            named = re.search(r"GLOBAL (\S+?)\.?(?:\s|$)", str(err))
            what = f" ({named.group(1)})" if named else ""
            raise CheckpointError(
                f"{path} holds pickled code{what} that will not be run (weights-only loading); re-save just its "
                "tensors: torch.save({'model': model.state_dict()}, path)"
            ) from None
        torn = zip_magic or isinstance(err, EOFError) or "EOF" in str(err)  # the old format's end, cut short
        what = "is truncated or corrupted" if torn else "is not a torch checkpoint"
        raise CheckpointError(
            f"{path} {what} ({type(err).__name__}); pass the authors' released .pth ({{'model': state_dict, ...}})"
        ) from None


def _holds_code(err: Exception) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused to run code the file names (a class, a function to call)."""
    if not isinstance(err, pickle.UnpicklingError):
        return False
    return bool(re.search(r"GLOBAL \S|call reduce for|Can only (create|build)|allowlisted", str(err)))


def load_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a released ``.pth`` safely (``weights_only=True``, memory-mapped) and strip FSDP/compile wrappers.

    The tensors are views of the mapped file: reading one pages in only that tensor.
    """
    blob = _read(path)
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected {{'model': state_dict, ...}})")
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.replace(prefix, "")
        out[key] = value
    return out


def convert_official_state_dict(state: dict[str, torch.Tensor], head_dim: int) -> dict[str, torch.Tensor]:
    """Rename released keys to ours (the tensors themselves are not touched). Raises :class:`CheckpointError`
    listing keys it does not know."""
    converted, unknown = {}, []
    for key, value in state.items():
        if key == _TEXT_ROPE_BUFFER:
            expected = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
            if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-5):
                raise CheckpointError(
                    f"{key} does not match a 1-D RoPE of head dim {head_dim}: was the checkpoint trained on another "
                    "Wan model than --wan's?"
                )
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


def official_key(name: str) -> str:
    """The released checkpoint's key for one of our weight names (the inverse of the key mapping)."""
    for theirs, ours in _PREFIX_MAP:
        if name.startswith(ours) and not any(
            name.startswith(longer) for _, longer in _PREFIX_MAP if len(longer) > len(ours) and longer.startswith(ours)
        ):
            return theirs + name[len(ours) :]
    raise KeyError(f"{name} has no place in the released checkpoint")


def read_official(checkpoint: str | os.PathLike, head_dim: int) -> dict[str, torch.Tensor]:
    """The released checkpoint under our keys, memory-mapped (:func:`load_official_state_dict` then
    :func:`convert_official_state_dict`)."""
    return convert_official_state_dict(load_official_state_dict(checkpoint), head_dim)


def official_config(
    state: dict[str, torch.Tensor],
    wan_config: dict,
    vocab_size: int | None = None,
    text_source: str | None = None,
    pad_token_id: int = 0,
    max_text_len: int = 256,
    bf16_time_embedding: bool = True,
) -> dict:
    """The :class:`UniViGUTransformer` config of a released checkpoint (ours-keyed ``state``) on ``wan_config``.

    The released text head has ``vocab_size`` rows, or ``vocab_size + 1`` when it was trained with a
    mask source. Give ``vocab_size`` or ``text_source`` to tell which; with neither, an uneven choice
    is refused rather than guessed.
    """
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
    return dict(
        config,
        text_formulation="discrete",
        vocab_size=vocab_size,
        text_source=text_source,
        pad_token_id=pad_token_id,
        max_text_len=max_text_len,
        time_embedding_rounding="bfloat16" if bf16_time_embedding else None,
    )


def empty_transformer(config: dict) -> UniViGUTransformer:
    """A :class:`UniViGUTransformer` with its parameters on the meta device: shapes and names, no memory."""
    with init_empty_weights():
        return UniViGUTransformer(**config)


def check_fits(state: dict[str, torch.Tensor], model: UniViGUTransformer) -> None:
    """Raise :class:`CheckpointError` naming what differs between ``state`` (ours-keyed) and ``model``'s weights."""
    ours = model.state_dict()
    hidden = model.config.num_attention_heads * model.config.attention_head_dim
    if "patch_embedding.weight" in state and state["patch_embedding.weight"].shape[0] != hidden:
        raise CheckpointError(
            f"the checkpoint is {state['patch_embedding.weight'].shape[0]} wide but the Wan config is {hidden} "
            f"({model.config.num_attention_heads} heads x {model.config.attention_head_dim}): pass the Wan2.1 model "
            "the checkpoint was trained from as --wan"
        )
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    if len(blocks) != model.config.num_layers:
        raise CheckpointError(
            f"the checkpoint has {len(blocks)} blocks but the Wan config has {model.config.num_layers}: "
            "pass the Wan2.1 model the checkpoint was trained from as --wan"
        )
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


def transformer_from_official(
    checkpoint: str | os.PathLike,
    wan_config: dict,
    vocab_size: int | None = None,
    text_source: str | None = None,
    pad_token_id: int = 0,
    max_text_len: int = 256,
    bf16_time_embedding: bool = True,
) -> UniViGUTransformer:
    """Build a :class:`UniViGUTransformer` from a released checkpoint and the base Wan config, in memory.

    The weights keep the checkpoint's dtype and are the mapped file's pages (no copy is made); see
    :func:`official_config` for ``vocab_size`` / ``text_source``. To keep the result, prefer
    :func:`write_official_transformer` (or ``univigu convert-official``), which streams.
    """
    state = read_official(checkpoint, wan_config["attention_head_dim"])
    config = official_config(
        state, wan_config, vocab_size, text_source, pad_token_id, max_text_len, bf16_time_embedding
    )
    model = empty_transformer(config)
    check_fits(state, model)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def _keeps_fp32(name: str, modules: list[str] | None) -> bool:
    """diffusers' rule (``load_model_dict_into_meta``): a weight whose dotted path names a kept-fp32 module."""
    return bool(modules) and any(m in name.split(".") for m in modules)


def _save_shard(shard: dict[str, torch.Tensor], path: str) -> None:
    """``safetensors.torch.save_file``, its I/O failures (a full disk, a size limit) raised as ``OSError``."""
    try:
        save_file(shard, path, metadata={"format": "pt"})
    except SafetensorError as err:
        code = re.search(r"os error (\d+)", str(err))
        if code:
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), path) from None
        raise OSError(f"could not write {path}: {err}") from None


def write_official_transformer(
    checkpoint: str | os.PathLike,
    wan_config: dict,
    out_dir: str | os.PathLike,
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = MAX_SHARD_SIZE,
    **config_kwargs,
) -> dict:
    """Convert a released checkpoint into a transformer folder ``out_dir`` (config + sharded safetensors).

    ``out_dir`` must exist (callers write into a temporary folder and rename it when this returns).
    ``dtype`` casts floating weights (``None`` keeps the checkpoint's); as diffusers does on loading, the
    model's ``_keep_in_fp32_modules`` stay float32. Each shard is written from a fresh mapping of the
    checkpoint, so memory holds one shard at a time. ``config_kwargs`` go to :func:`official_config`.
    Returns ``{"parameters", "bytes", "shards", "config"}``.
    """
    state = read_official(checkpoint, wan_config["attention_head_dim"])
    config = official_config(state, wan_config, **config_kwargs)
    model = empty_transformer(config)
    check_fits(state, model)
    keep_fp32 = model._keep_in_fp32_modules

    def target(name: str, tensor: torch.Tensor) -> torch.dtype:
        if dtype is None or not tensor.is_floating_point():
            return tensor.dtype
        return torch.float32 if _keeps_fp32(name, keep_fp32) else dtype

    # Plan the shards on meta tensors of the written dtype (sizes only), in the model's key order.
    order = list(model.state_dict())
    planned = {k: torch.empty(state[k].shape, dtype=target(k, state[k]), device="meta") for k in order}
    parameters = sum(t.numel() for t in planned.values())
    split = split_torch_state_dict_into_shards(planned, filename_pattern=WEIGHTS_PATTERN, max_shard_size=max_shard_size)
    loaded = None if _mappable(checkpoint) else state  # an old-format file was read whole: keep it, read once
    del state, planned
    model.save_config(out_dir)
    del model

    for filename, keys in split.filename_to_tensors.items():
        state = loaded or read_official(checkpoint, wan_config["attention_head_dim"])  # a fresh mapping per shard
        shard = {}
        for k in keys:
            tensor = state[k]
            shard[k] = tensor.to(target(k, tensor)).contiguous()
        _save_shard(shard, os.path.join(out_dir, filename))
        del state, shard  # unmaps the file: the pages read for this shard leave memory
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        with open(os.path.join(out_dir, WEIGHTS_INDEX_NAME), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    written = sum(os.path.getsize(os.path.join(out_dir, name)) for name in split.filename_to_tensors)
    return {"parameters": parameters, "bytes": written, "shards": len(split.filename_to_tensors), "config": config}
