"""LoRA fine-tuning (``--lora_rank=R``): rank-R adapters on a UniViGU model's attention, every other weight frozen.

The adapters are peft's, added through diffusers' ``PeftAdapterMixin.add_adapter``. What a run writes stays what
every other run writes, a full model folder (adapters merged into the weights they adapt), so the next stage, the
pipeline and evaluation read it unchanged; the final folder also holds the adapters alone,
``pytorch_lora_weights.safetensors``, which ``UniViGUPipeline.load_lora_weights`` applies to the model trained from.
"""

from pathlib import Path

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict

from univigu import UniViGUPipeline
from univigu.lora import LORA_TARGETS

from .distributed import plain_copy


def add_lora(model, rank: int, alpha: float):
    """Freeze ``model`` and give it trainable rank-``rank`` adapters (scale ``alpha / rank``) on LORA_TARGETS."""
    model.requires_grad_(False)
    model.add_adapter(
        LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)
    )
    return model


@torch.no_grad()
def merged(model):
    """A CPU copy of ``model`` with its adapters merged into the weights they adapt, and no adapters: a plain
    model for ``save_pretrained``. ``model`` itself is untouched (merging in place and back would round its
    weights, and training goes on from them)."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    state = {}
    for key, value in model.state_dict().items():
        if ".lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        owner, _, leaf = key.rpartition(".")
        if leaf == "weight" and owner in layers:  # one delta at a time: never all of them at once
            value = value + layers[owner].get_delta_weight("default").to(value.dtype)
        state[key] = value.detach().to("cpu")
    return plain_copy(type(model), model, state)


def save_adapters(model, folder: Path) -> None:
    """``folder/pytorch_lora_weights.safetensors``: the adapters alone, in diffusers' LoRA format."""
    UniViGUPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(model))
