"""LoRA adapters for the unified transformer, with diffusers' own loaders.

:class:`UniViGUTransformer` is a ``PeftAdapterMixin`` like Wan's, so ``add_adapter``, ``load_lora_adapter``,
``fuse_lora`` and ``set_adapters`` are diffusers'; the pipeline gets ``load_lora_weights`` and
``save_lora_weights`` from ``WanLoraLoaderMixin`` through :class:`UniViGULoraLoaderMixin`. Adapters trained by
``training.train --lora_rank=R`` sit on the attention projections every stream shares (:data:`LORA_TARGETS`).
"""

from diffusers.loaders import WanLoraLoaderMixin

# The projections of self- and cross-attention in every block (diffusers' Wan LoRA training targets them too)
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class UniViGULoraLoaderMixin(WanLoraLoaderMixin):
    """``WanLoraLoaderMixin`` for a transformer without Wan's image branch, reading safetensors files only."""

    @classmethod
    def lora_state_dict(cls, pretrained_model_name_or_path_or_dict, **kwargs):
        kwargs["use_safetensors"] = True  # diffusers would fall back to unpickling a .bin: never
        return super().lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)

    @classmethod
    def _maybe_expand_t2v_lora_for_i2v(cls, transformer, state_dict):
        return state_dict  # Wan's hook reads config.image_dim; this model has no image branch to expand into
