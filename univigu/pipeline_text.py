"""The pipeline's text: prompts checked against the text stream, ids for it, and its states read back as text.

The free functions here are how every text is prepared, at inference and in training alike (``training/data.py``
builds its cache with them): cleaned as Wan cleans prompts, then tokenized for the text stream
(:func:`text_stream_ids`) or embedded by the text encoder (:func:`encode_texts`). A model is never trained on ids
or embeddings it will not be given.
"""

import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean


class PromptError(ValueError):
    """A prompt the model cannot take (empty, too long)."""


def clean_text(text: str) -> str:
    """A text as the model sees it: Wan's ``prompt_clean`` (HTML entities undone, whitespace runs to one space)."""
    return prompt_clean(text)


def max_sequence_length(tokenizer) -> int:
    """Prompt tokens the text encoder sees (Wan: 512)."""
    return min(int(tokenizer.model_max_length), 512)


def text_stream_ids(tokenizer, texts: list[str], length: int, pad_id: int) -> torch.Tensor:
    """Clean text-stream ids [B, length] of ``texts`` (each ending with the end token), padded with ``pad_id``.

    Raises :class:`PromptError` for a text longer than the stream."""
    ids = torch.full((len(texts), length), pad_id, dtype=torch.long)
    for row, text in enumerate(texts):
        row_ids = stream_ids(tokenizer, text, length)
        ids[row, : len(row_ids)] = torch.tensor(row_ids)
    return ids


def stream_ids(tokenizer, text: str, length: int) -> list[int]:
    """Text-stream ids of one text (with the tokenizer's end token); raises PromptError if over ``length``."""
    ids = tokenizer(clean_text(text), add_special_tokens=True).input_ids
    if len(ids) > length:
        raise PromptError(
            f"the prompt is {len(ids)} tokens; this model's text stream holds at most {length}. Shorten it."
        )
    return ids


@torch.no_grad()
def encode_texts(tokenizer, text_encoder, texts: list[str], device=None, dtype=None) -> torch.Tensor:
    """UMT5 embeddings [B, max_sequence_length, text_dim] of ``texts``, zero past each one's length (Wan's)."""
    inputs = tokenizer(
        [clean_text(t) for t in texts],
        padding="max_length",
        max_length=max_sequence_length(tokenizer),
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    encoder_device = text_encoder.device
    embeds = text_encoder(
        inputs.input_ids.to(encoder_device), inputs.attention_mask.to(encoder_device)
    ).last_hidden_state
    device, dtype = device or embeds.device, dtype or embeds.dtype
    return embeds.to(device=device, dtype=dtype) * inputs.attention_mask.to(device, dtype)[..., None]


class TextStreamMixin:
    """Text-stream methods of :class:`UniViGUPipeline` (uses ``self.tokenizer`` and ``self.transformer``)."""

    def text_ids(self, text: str) -> list[int]:
        """Text-stream ids of ``text`` (with the tokenizer's end token); raises PromptError if too long."""
        return stream_ids(self.tokenizer, text, self.max_text_len)

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the tokenizer maps to its unknown token (empty for subword vocabularies)."""
        unk = self.tokenizer.unk_token_id
        if unk is None:
            return []
        return [w for w in clean_text(text).split() if unk in self.tokenizer(w, add_special_tokens=False).input_ids]

    def _validate_prompt(self, prompt: str | None, required: bool) -> str | None:
        if prompt is None or not str(prompt).strip():
            if required:
                raise PromptError("the prompt is empty; describe the clip you want")
            return None
        self.text_ids(prompt)
        return str(prompt)

    def _end_ids(self) -> tuple[int, ...]:
        """The ids that end a text-stream state: the tokenizer's end token (if it has one) and the pad id."""
        eos = self.tokenizer.eos_token_id
        pad = self.transformer.config.pad_token_id
        return (pad,) if eos is None else (eos, pad)

    def decode_text(self, ids: list[int] | torch.Tensor) -> str:
        """A text-stream state as a sentence: cut at the first end/pad token, masked positions as ``_``."""
        ids = [int(i) for i in ids]
        stops = {self.tokenizer.eos_token_id, self.transformer.config.pad_token_id}
        end = next((k for k, i in enumerate(ids) if i in stops), len(ids))
        pieces, chunk = [], []
        for i in ids[:end] + [None]:  # None flushes the last chunk
            if i is not None and i != self.transformer.mask_token_id:
                chunk.append(i)
                continue
            if chunk:
                pieces.append(self.tokenizer.decode(chunk, skip_special_tokens=True))
            chunk = []
            if i is not None:
                pieces.append("_")
        return " ".join(p for p in pieces if p).strip()

    def token_strings(self, ids: list[int]) -> list[str]:
        """Display strings of text-stream ids (``<mask>`` for the mask token)."""
        mask_id = self.transformer.mask_token_id
        return ["<mask>" if i == mask_id else self.tokenizer.convert_ids_to_tokens(i) for i in ids]

    def text_id_rows(self, texts: list[str]) -> torch.Tensor:
        """Clean text-stream ids [B, max_text_len] of ``texts``, padded with the pad token."""
        return text_stream_ids(self.tokenizer, texts, self.max_text_len, self.transformer.config.pad_token_id)
