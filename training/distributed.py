"""Fully sharded training (FSDP2) for the training loop, with accelerate's plugin and functions, on GPUs and on CPUs.

``accelerate launch --config_file training/configs/fsdp.yaml`` exports the plugin's settings (``ACCELERATE_USE_FSDP``,
``FSDP_*``). accelerate 1.15 turns them into an FSDP state only on accelerator devices (CUDA, XPU, ...); CPU
processes get DDP, without a word. So the loop shards the model itself, with the function accelerate's own FSDP2
path calls (``fsdp2_prepare_model``: one ``fully_shard`` unit per block class in ``_no_split_modules``, then the
root), builds the optimizer over the shards, and checkpoints with ``save_fsdp_model`` / ``save_fsdp_optimizer``
(torch.distributed.checkpoint: every process writes its own shards): a two-process gloo run is the code a GPU
node runs. ``accelerate merge-weights DIR/state/pytorch_model_fsdp_0 OUT`` turns a checkpoint's shards into one file.
"""

import os

import torch
from accelerate import Accelerator
from accelerate.utils import (
    FullyShardedDataParallelPlugin,
    fsdp2_prepare_model,
    load_fsdp_model,
    load_fsdp_optimizer,
    save_fsdp_model,
    save_fsdp_optimizer,
)
from torch.distributed.fsdp import FSDPModule


def is_sharded(model) -> bool:
    return isinstance(model, FSDPModule)


def shard(accelerator: Accelerator, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` sharded by FSDP2 when the launch asks for FSDP on several processes; else unchanged.

    Call it before building the optimizer, which must hold the shards (DTensors), not the full parameters."""
    if accelerator.is_fsdp2:
        plugin = accelerator.state.fsdp_plugin
    elif os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or accelerator.num_processes == 1:
        return model
    else:  # CPU: accelerate fell back to DDP; the plugin from the same settings, as accelerate makes it on GPUs
        plugin = FullyShardedDataParallelPlugin()
        if accelerator.mixed_precision != "no":
            plugin.set_mixed_precision(accelerator.mixed_precision)
        accelerator.state.fsdp_plugin = plugin
    if plugin.fsdp_version != 2:
        raise SystemExit("training.train shards with FSDP2: set fsdp_version: 2 in the accelerate config")
    return fsdp2_prepare_model(accelerator, model)


def prepare(accelerator: Accelerator, model, optimizer):
    """``accelerator.prepare`` for (model, optimizer); a sharded model is already prepared (DDP would wrap it)."""
    if is_sharded(model):
        return model, accelerator.prepare(optimizer)
    return accelerator.prepare(model, optimizer)


def save_state(accelerator: Accelerator, model, optimizer, folder) -> None:
    """Weights and optimizer state (and, unsharded, accelerate's RNG states) into ``folder``; every process calls."""
    if not is_sharded(model):
        accelerator.save_state(str(folder))
        return
    save_fsdp_model(accelerator.state.fsdp_plugin, accelerator, model, str(folder))
    save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(folder))


def load_state(accelerator: Accelerator, model, optimizer, folder) -> None:
    """What :func:`save_state` wrote, into the (sharded) model and optimizer; every process calls."""
    if not is_sharded(model):
        accelerator.load_state(str(folder))
        return
    load_fsdp_model(accelerator.state.fsdp_plugin, accelerator, model, str(folder))
    load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(folder))


def full_model(accelerator: Accelerator, model):
    """The model as one module, for ``save_pretrained`` and sampling: a sharded model is gathered into a CPU copy
    on the main process (``None`` on the others); every process calls."""
    if not is_sharded(model):
        return accelerator.unwrap_model(model)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not accelerator.is_main_process:
        return None
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # FSDP2 subclasses the model's
    return plain_copy(cls, model, state)


def plain_copy(cls, model, state: dict):
    """A ``cls`` of ``model``'s config holding ``state`` (a full state dict on the CPU) and ``model``'s
    non-persistent buffers (rotary tables, which no state dict holds)."""
    with torch.device("meta"):
        plain = cls.from_config(model.config)
    plain.load_state_dict(state, assign=True)
    for name, buffer in model.named_buffers():
        owner, _, attr = name.rpartition(".")
        if getattr(plain.get_submodule(owner), attr).is_meta:
            setattr(plain.get_submodule(owner), attr, buffer.detach().to("cpu"))
    return plain.train(model.training)
