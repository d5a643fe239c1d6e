"""The ShapesWorld word tokenizer: one token per word of the world's vocabulary.

Shared by the text encoder (:mod:`training.shapesworld.text_encoder`) and the transformer's text stream.
"""

from univigu.tokenization import build_word_tokenizer

from .text import VOCABULARY

MAX_TEXT_LEN = 32  # the longest ShapesWorld caption is 27 words + </s>


def build_tokenizer(max_len: int = MAX_TEXT_LEN):
    return build_word_tokenizer(VOCABULARY, model_max_length=max_len)
