"""The folders the trainer starts from: the frozen components, and the transformer to train.

A components folder holds ``tokenizer/``, ``text_encoder/`` (UMT5) and ``vae/`` (``AutoencoderKLWan``) in the
diffusers pipeline layout (a pipeline folder is one); ``training.shapesworld.components`` builds the
ShapesWorld ones. A transformer folder holds a ``UniViGUTransformer`` or a base generator
(``WanTransformer3DModel``), which :func:`load_transformer` converts as Stage 1 starts it.
"""

import json
from pathlib import Path

from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5EncoderModel

from univigu.models import UniViGUTransformer, position_channels


def load_components(components_dir: str):
    """(tokenizer, text_encoder, vae) from a components folder (``training.shapesworld.components``) or pipeline."""
    path = Path(components_dir)
    tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
    text_encoder = UMT5EncoderModel.from_pretrained(path / "text_encoder").eval()
    vae = AutoencoderKLWan.from_pretrained(path / "vae").eval()
    return tokenizer, text_encoder, vae


def uni_from_base(
    wan: WanTransformer3DModel,
    tokenizer,
    ffn_t_init: str = "copy",
    max_text_len: int | None = None,
    text_formulation: str = "discrete",
) -> UniViGUTransformer:
    """The base generator as a UniViGU transformer, as Stage 1 starts it: a text stream over ``tokenizer``'s
    words (discrete with a mask source, the release; or ``text_formulation="embedding"``, the paper's eq. 7-8)
    of ``max_text_len`` positions (default: the tokenizer's), its text head at zero
    (``UniViGUTransformer.from_wan``); the base's coordinate channels, if any, stay coordinates."""
    return UniViGUTransformer.from_wan(
        wan,
        ffn_t_init=ffn_t_init,
        position_channels=position_channels(wan.config),
        text_formulation=text_formulation,
        text_source="mask",
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_text_len=max_text_len or tokenizer.model_max_length,
    )


def load_transformer(
    transformer_dir: str,
    tokenizer,
    max_text_len: int | None = None,
    ffn_t_init: str = "copy",
    text_formulation: str = "discrete",
) -> UniViGUTransformer:
    """A trained UniViGU transformer, or a base generator (``WanTransformer3DModel``) converted with
    :func:`uni_from_base` (``text_formulation`` applies to that conversion only)."""
    config = json.loads((Path(transformer_dir) / "config.json").read_text())
    if config.get("_class_name") == WanTransformer3DModel.__name__:
        if tokenizer is None:
            raise ValueError(
                f"{transformer_dir} is a base generator: converting it needs the tokenizer (pass --components)"
            )
        wan = WanTransformer3DModel.from_pretrained(transformer_dir)
        return uni_from_base(wan, tokenizer, ffn_t_init, max_text_len=max_text_len, text_formulation=text_formulation)
    return UniViGUTransformer.from_pretrained(transformer_dir)
