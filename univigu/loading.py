"""Getting a ready UniViGUPipeline from what a user has: our folders, a Wan2.1 model, or the authors' release."""

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import sys

import diffusers
import torch
from diffusers import AutoencoderKLWan
from diffusers.schedulers import SchedulerMixin
from transformers import AutoTokenizer, UMT5EncoderModel

from .bundled import bundled_path
from .durable import exclusive_lock, fsync_dir, fsync_tree
from .models import UniViGUTransformer
from .official import MAX_SHARD_SIZE, CheckpointError, write_official_transformer
from .offload import DTYPES, Placement
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


def resolve_model(model: str, allow_patterns: list[str] | None = None) -> str:
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


def load_pipeline(
    model: str | None = None, placement: Placement | None = None, torch_dtype: torch.dtype | None = None
) -> UniViGUPipeline:
    """Load a UniViGU pipeline folder or hub id (``model_index.json`` naming ``UniViGUPipeline``); default: the
    bundled model (or ``$UNIVIGU_MODEL``). With a ``placement`` it comes back placed, its step cache set: the one
    way the command line, the studio and evaluation get a ready pipeline. ``torch_dtype`` overrides the
    placement's dtype for the weights."""
    if placement is not None and placement.problem():
        raise ValueError(placement.problem())
    torch_dtype = torch_dtype or (DTYPES[placement.dtype] if placement is not None else torch.float32)
    model = model or default_model()
    path = resolve_model(model)
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
        pipe = UniViGUPipeline.from_pretrained(path, dtype=torch_dtype)
    except Exception as err:
        raise ModelLoadError(f"could not load {model}: {type(err).__name__}: {err}") from err
    return placement.apply(pipe) if placement is not None else pipe


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

    path = resolve_model(wan)
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


# A conversion into OUT writes .convert-OUT-<8 hex> beside it (holding MARKER: our pid and the folder's name) under
# the lock .convert-OUT.lock, and swaps it in when complete; where the filesystem cannot swap two folders, the old
# OUT is renamed aside to .convert-OUT.old first. A run that starts under the lock finishes or undoes what a killed
# one left (_recover).
MARKER = ".univigu-convert"


def _reached(phase: str) -> None:
    """A conversion passing a phase of installing its folder ("written", "swapped", "aside", "renamed")."""


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False  # a kernel or filesystem without the flag
    raise OSError(code, os.strerror(code), b)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


class _Names:
    """Where a conversion into ``out`` keeps its lock, temporary folders and the old model set aside."""

    def __init__(self, out: str):
        self.out = os.path.abspath(out)
        self.parent, name = os.path.split(self.out)
        self.lock = os.path.join(self.parent, f".convert-{name}.lock")
        self.aside = os.path.join(self.parent, f".convert-{name}.old")
        self.temp = re.compile(rf"\.convert-{re.escape(name)}-[0-9a-f]{{8}}")

    def new_temp(self) -> str:
        name = os.path.basename(self.out)
        while True:
            path = os.path.join(self.parent, f".convert-{name}-{secrets.token_hex(4)}")
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                continue
        with open(os.path.join(path, MARKER), "w") as f:
            json.dump({"pid": os.getpid(), "temp": os.path.basename(path)}, f)
        return path


def _recover(names: _Names) -> list[str]:
    """Finish or undo what conversions into ``names.out`` that were killed left; the lock is held (none runs now).

    The old model set aside goes back when the new one never made it in, and is deleted when it did; temporary
    folders (ours by name and MARKER) are deleted. Returns what was done, for the user.
    """
    out, done = names.out, []
    marker = os.path.join(out, MARKER)
    if os.path.lexists(names.aside):
        if not os.path.lexists(out):
            os.replace(names.aside, out)
            done.append(f"put the earlier {out} back")
        elif os.path.isfile(marker):
            _remove(names.aside)
            done.append(f"deleted the model {out} held before")
        else:
            raise ModelLoadError(
                f"{names.aside} holds what {out} held before an interrupted conversion, and {out} exists too: "
                "keep one of them and delete the other"
            )
    if os.path.isfile(marker):  # the new model made it in: the folder it was swapped with holds the old one
        with open(marker) as f:
            swapped = os.path.join(names.parent, str(json.load(f).get("temp", "")))
        if names.temp.fullmatch(os.path.basename(swapped)) and os.path.lexists(swapped):
            _remove(swapped)
            done.append(f"deleted the model {out} held before")
        os.remove(marker)
        fsync_dir(out)
    for entry in os.listdir(names.parent):
        path = os.path.join(names.parent, entry)
        if names.temp.fullmatch(entry) and os.path.isdir(path) and not os.path.islink(path):
            if os.path.isfile(os.path.join(path, MARKER)) or not os.listdir(path):
                shutil.rmtree(path)
                done.append(f"deleted {entry}, left by a killed conversion")
    if done:
        fsync_dir(names.parent)
    return done


def _install(temp: str, names: _Names) -> None:
    """Put the complete folder ``temp`` at ``names.out``: at every instant ``out`` is the old model or the new one
    (where the filesystem swaps folders; else, for one rename, the old one waits at ``names.aside``)."""
    out = names.out
    fsync_tree(temp)
    _reached("written")
    if os.path.lexists(out) and _exchange(temp, out):
        fsync_dir(names.parent)
        _reached("swapped")
        _remove(temp)  # now the old model
    else:
        if os.path.lexists(out):
            os.replace(out, names.aside)
            fsync_dir(names.parent)
            _reached("aside")
        os.replace(temp, out)
        fsync_dir(names.parent)
        _reached("renamed")
        _remove(names.aside)
    os.remove(os.path.join(out, MARKER))
    fsync_dir(out)
    fsync_dir(names.parent)


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
    ``"float16"``, ``"float32"``) casts the weights.

    A kill at any point leaves ``out`` whole: the folder is written beside it under a temporary name, fsync'd, and
    swapped in when complete (an ``overwrite``'s old model is deleted after). One conversion into ``out`` runs at a
    time (another is refused, naming its pid), and each first finishes or undoes what a killed one left.
    """
    names = _Names(out)
    os.makedirs(names.parent, exist_ok=True)
    busy = f"another conversion into {out} is running (pid {{pid}}); wait for it to finish or stop it"
    with exclusive_lock(names.lock, busy):
        for line in _recover(names):
            print(f"convert-official: {line}", file=sys.stderr)
        if os.path.lexists(out) and not overwrite:
            raise ModelLoadError(f"{out} already exists; choose another --out or pass --overwrite")
        _convert(checkpoint, wan, out, names, vocab_size, text_source, bf16_time_embedding, dtype, max_shard_size)
    return out


def _convert(checkpoint, wan, out, names, vocab_size, text_source, bf16_time_embedding, dtype, max_shard_size):
    """:func:`convert_official`'s work, under its lock."""
    if isinstance(dtype, str):
        if dtype not in CONVERT_DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(CONVERT_DTYPES)}")
        dtype = CONVERT_DTYPES[dtype]
    if wan.endswith(".json"):
        if not os.path.isfile(wan):
            raise ModelLoadError(f"no such config file: {wan}")
        wan_path, wan_config_file, is_pipeline = None, wan, False
    else:
        wan_path = resolve_model(wan, allow_patterns=["*.json", *(f"{c}/*" for c in WAN_COMPONENTS)])
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

    try:
        tmp = names.new_temp()
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
        _install(tmp, names)
    except OSError as err:  # a full disk, a size limit, a read-only folder
        _recover(names)
        raise ModelLoadError(
            f"could not write {out}: {err.strerror or err} (is the disk full?); nothing was left behind"
        ) from None
    except BaseException:
        _recover(names)  # the temporary folder goes; a half-done install is finished or undone
        raise


__all__ = [
    "BUNDLED_MODEL",
    "CheckpointError",
    "ModelLoadError",
    "convert_official",
    "default_model",
    "load_pipeline",
    "pipeline_from_wan",
]
