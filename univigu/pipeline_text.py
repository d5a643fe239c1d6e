"""The pipeline's text: prompts checked against the text stream, ids for it, and its states read back as text."""

import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean


class PromptError(ValueError):
    """A prompt the model cannot take (empty, too long)."""


class TextStreamMixin:
    """Text-stream methods of :class:`UniViGUPipeline` (uses ``self.tokenizer`` and ``self.transformer``)."""

    def text_ids(self, text: str) -> list[int]:
        """Text-stream ids of ``text`` (with the tokenizer's end token); raises PromptError if too long."""
        ids = self.tokenizer(prompt_clean(text), add_special_tokens=True).input_ids
        if len(ids) > self.max_text_len:
            raise PromptError(
                f"the prompt is {len(ids)} tokens; this model's text stream holds at most "
                f"{self.max_text_len}. Shorten it."
            )
        return ids

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the tokenizer maps to its unknown token (empty for subword vocabularies)."""
        unk = self.tokenizer.unk_token_id
        if unk is None:
            return []
        return [w for w in prompt_clean(text).split() if unk in self.tokenizer(w, add_special_tokens=False).input_ids]

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
        ids = torch.full((len(texts), self.max_text_len), self.transformer.config.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            row_ids = self.text_ids(text)
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
        return ids
