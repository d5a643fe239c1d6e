"""Getting a ready UniViGUPipeline from what a user has: our folders, a Wan2.1 model, or the authors' release."""

import json
import os
import re
import shutil
import tempfile

import diffusers
import torch
from diffusers import AutoencoderKLWan
from diffusers.schedulers import SchedulerMixin
from transformers import AutoTokenizer, UMT5EncoderModel

from .bundled import bundled_path
from .models import UniViGUTransformer
from .official import MAX_SHARD_SIZE, CheckpointError, write_official_transformer
from .pipeline_univigu import UniViGUPipeline

BUNDLED_MODEL = bundled_path("univigu-shapesworld")  # package data in a wheel, assets/ in a clone
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
WAN_480P = {"default_num_frames": 81, "default_height": 480, "default_width": 832, "fps": 16}
# Components of a Wan2.1 pipeline folder that a converted pipeline reuses unchanged (copied file by file).
WAN_COMPONENTS = ("tokenizer", "text_encoder", "vae", "scheduler")
CONVERT_DTYPES = {"keep": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(ValueError):
    """A model path or id that does not hold what was asked for; the message says what to do."""


def default_model() -> str:
    """``$UNIVIGU_MODEL`` if set, else the bundled ShapesWorld model."""
    return os.environ.get("UNIVIGU_MODEL") or BUNDLED_MODEL


def _resolve(model: str, allow_patterns: list[str] | None = None) -> str:
    """A local folder for ``model``: the folder itself, or a hub snapshot (cached or downloaded)."""
    if os.path.exists(model):
        return model
    if not HUB_ID.match(model):
        raise ModelLoadError(f"no such file or folder: {model}")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, allow_patterns=allow_patterns)
    except Exception as err:
        raise ModelLoadError(
            f"{model!r} is neither a local folder nor a reachable Hugging Face repo ({type(err).__name__}). "
            "Download it first or pass a local path."
        ) from err


def load_pipeline(model: str | None = None, torch_dtype: torch.dtype = torch.float32) -> UniViGUPipeline:
    """Load a UniViGU pipeline folder or hub id (``model_index.json`` naming ``UniViGUPipeline``)."""
    model = model or default_model()
    path = _resolve(model)
    index = os.path.join(path, "model_index.json")
    if not os.path.isfile(index):
        hint = (
            "it looks like the authors' checkpoint: convert it with `univigu convert-official`"
            if path.endswith((".pth", ".pt"))
            else "for a Wan2.1 Diffusers model use `univigu.loading.pipeline_from_wan`"
        )
        raise ModelLoadError(f"{model} is not a UniViGU pipeline (no model_index.json); {hint}")
    with open(index) as f:
        class_name = json.load(f).get("_class_name")
    if class_name != "UniViGUPipeline":
        raise ModelLoadError(
            f"{model} holds a {class_name}, not a UniViGUPipeline; "
            "build one from a Wan2.1 model with `univigu.loading.pipeline_from_wan`"
        )
    try:
        return UniViGUPipeline.from_pretrained(path, dtype=torch_dtype)
    except Exception as err:
        raise ModelLoadError(f"could not load {model}: {type(err).__name__}: {err}") from err


def _wan_components(path: str, torch_dtype):
    tokenizer = AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
    text_encoder = UMT5EncoderModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=torch_dtype)
    vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=torch.float32)
    with open(os.path.join(path, "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)
    scheduler_cls = getattr(diffusers, sched_cfg["_class_name"])
    if not issubclass(scheduler_cls, SchedulerMixin):
        raise ModelLoadError(f"unexpected scheduler class {sched_cfg['_class_name']}")
    scheduler = scheduler_cls.from_pretrained(path, subfolder="scheduler")
    return tokenizer, text_encoder, vae, scheduler


def pipeline_from_wan(
    wan: str,
    text_formulation: str = "discrete",
    text_source: str = "mask",
    max_text_len: int = 256,
    ffn_t_init: str = "copy",
    torch_dtype: torch.dtype = torch.float32,
) -> UniViGUPipeline:
    """A fresh UniViGU pipeline (ready for Stage 1) from a Wan2.1 text-to-video Diffusers folder or hub id."""
    from diffusers import WanTransformer3DModel

    path = _resolve(wan)
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise ModelLoadError(f"{wan} is not a Diffusers pipeline folder (no model_index.json)")
    tokenizer, text_encoder, vae, scheduler = _wan_components(path, torch_dtype)
    wan_transformer = WanTransformer3DModel.from_pretrained(path, subfolder="transformer", torch_dtype=torch_dtype)
    transformer = UniViGUTransformer.from_wan(
        wan_transformer,
        ffn_t_init=ffn_t_init,
        text_formulation=text_formulation,
        text_source=text_source,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_text_len=max_text_len,
    )
    return UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        **WAN_480P,
    )


def _copy_tree(src: str, dst: str) -> None:
    """Copy a folder file by file (``shutil.copyfile`` streams through the kernel: nothing is loaded)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)


def convert_official(
    checkpoint: str,
    wan: str,
    out: str,
    vocab_size: int | None = None,
    text_source: str | None = None,
    bf16_time_embedding: bool = True,
    overwrite: bool = False,
    dtype: str | torch.dtype | None = None,
    max_shard_size: int | str = MAX_SHARD_SIZE,
) -> str:
    """Convert the authors' checkpoint into ``out``: a pipeline folder (WAN is a pipeline) or a transformer folder.

    ``wan`` is a Wan2.1 Diffusers folder or hub id (its transformer config is read; its tokenizer, text
    encoder, VAE and scheduler are copied file by file, never loaded) or a transformer ``config.json``.
    The transformer streams into sharded safetensors (:func:`univigu.official.write_official_transformer`):
    memory stays near one shard whatever the checkpoint's size. ``dtype`` (``"keep"``/None, ``"bfloat16"``,
    ``"float16"``, ``"float32"``) casts the weights. The folder is written beside ``out`` under a temporary
    name and renamed when complete: it appears whole or not at all.
    """
    if os.path.exists(out) and not overwrite:
        raise ModelLoadError(f"{out} already exists; choose another --out or pass --overwrite")
    if isinstance(dtype, str):
        if dtype not in CONVERT_DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(CONVERT_DTYPES)}")
        dtype = CONVERT_DTYPES[dtype]
    if wan.endswith(".json"):
        if not os.path.isfile(wan):
            raise ModelLoadError(f"no such config file: {wan}")
        wan_path, wan_config_file, is_pipeline = None, wan, False
    else:
        wan_path = _resolve(wan, allow_patterns=["*.json", *(f"{c}/*" for c in WAN_COMPONENTS)])
        is_pipeline = os.path.isfile(os.path.join(wan_path, "model_index.json"))
        wan_config_file = os.path.join(wan_path, "transformer" if is_pipeline else "", "config.json")
        if not os.path.isfile(wan_config_file):
            raise ModelLoadError(f"{wan} has no transformer config.json")
    try:
        with open(wan_config_file) as f:
            wan_config = json.load(f)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{wan_config_file} is not a readable JSON config ({type(err).__name__})") from None
    if not isinstance(wan_config, dict) or wan_config.get("_class_name") != "WanTransformer3DModel":
        raise ModelLoadError(f"{wan_config_file} is not a WanTransformer3DModel config")

    pad_token_id = 0
    if is_pipeline:
        with open(os.path.join(wan_path, "model_index.json")) as f:
            wan_index = json.load(f)
        absent = [c for c in WAN_COMPONENTS if not os.path.isdir(os.path.join(wan_path, c)) or c not in wan_index]
        if absent:
            raise ModelLoadError(f"{wan} lacks {', '.join(absent)}: pass a full Wan2.1 Diffusers pipeline folder")
        tokenizer = AutoTokenizer.from_pretrained(wan_path, subfolder="tokenizer")  # its size and pad id only
        if vocab_size is None and text_source is None:
            vocab_size = len(tokenizer)
        pad_token_id = tokenizer.pad_token_id
        del tokenizer

    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    try:
        transformer_dir = os.path.join(tmp, "transformer") if is_pipeline else tmp
        os.makedirs(transformer_dir, exist_ok=True)
        write_official_transformer(
            checkpoint,
            wan_config,
            transformer_dir,
            dtype=dtype,
            max_shard_size=max_shard_size,
            vocab_size=vocab_size,
            text_source=text_source,
            pad_token_id=pad_token_id,
            bf16_time_embedding=bf16_time_embedding,
        )
        if is_pipeline:
            for name in WAN_COMPONENTS:
                _copy_tree(os.path.join(wan_path, name), os.path.join(tmp, name))
            index = {
                "_class_name": UniViGUPipeline.__name__,
                "_diffusers_version": diffusers.__version__,
                **{name: wan_index[name] for name in WAN_COMPONENTS},
                "transformer": [UniViGUTransformer.__module__, UniViGUTransformer.__name__],
                **WAN_480P,
            }
            with open(os.path.join(tmp, "model_index.json"), "w") as f:
                json.dump(index, f, indent=2, sort_keys=True)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as err:  # a full disk, a size limit, a read-only folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelLoadError(
            f"could not write {out}: {err.strerror or err} (is the disk full?); nothing was left behind"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = [
    "BUNDLED_MODEL",
    "CheckpointError",
    "ModelLoadError",
    "convert_official",
    "default_model",
    "load_pipeline",
    "pipeline_from_wan",
]
