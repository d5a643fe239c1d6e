"""The pipeline's text: prompts checked against the text stream, ids for it, and its states read back as text.

The free functions here are how every text is prepared, at inference and in training alike (``training/data.py``
builds its cache with them): cleaned as Wan cleans prompts, then tokenized for the text stream
(:func:`text_stream_ids`) or embedded by the text encoder (:func:`encode_texts`). A model is never trained on ids
or embeddings it will not be given.
"""

import re

import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

# A blank of a fill-in template: "_" is one text position to fill, "_*N" N positions
BLANK = re.compile(r"_(?:\*(\d+))?")


class PromptError(ValueError):
    """A prompt the model cannot take (empty, too long)."""


def clean_text(text: str) -> str:
    """A text as the model sees it: Wan's ``prompt_clean`` (HTML entities undone, whitespace runs to one space)."""
    return prompt_clean(text)


def require_prompt(prompt, name: str = "the prompt") -> str:
    """``prompt`` as a str, or a one-line :class:`PromptError` naming ``name`` (the argument, flag or field a
    user typed it in) when it is missing or blank: the rule every front end applies before a run."""
    if prompt is None or not str(prompt).strip():
        raise PromptError(f"{name} is empty; describe the clip you want")
    return str(prompt)


def closed_vocabulary(tokenizer, most: int = 2000) -> list[str] | None:
    """The words, sorted, of a word-level tokenizer (one with an unknown token and at most ``most`` words);
    None for a subword vocabulary, which spells any word."""
    if tokenizer.unk_token_id is None:
        return None
    specials = set(tokenizer.all_special_tokens)
    words = sorted(w for w in tokenizer.get_vocab() if w not in specials)
    return words if len(words) <= most else None


def unknown_words(tokenizer, text: str) -> list[str]:
    """Words of ``text`` the tokenizer maps to its unknown token (none for subword vocabularies)."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return []
    return [w for w in clean_text(text).split() if unk in tokenizer(w, add_special_tokens=False).input_ids]


def check_words(tokenizer, prompt: str, name: str = "the prompt") -> None:
    """Refuse a prompt with words the model's vocabulary lacks (each would become the unknown token): a one-line
    :class:`PromptError` naming ``name``, the words and, for a small closed vocabulary, the words it knows."""
    unknown = list(dict.fromkeys(unknown_words(tokenizer, prompt)))
    if not unknown:
        return
    known = [w for w in closed_vocabulary(tokenizer) or [] if w.isalnum()]
    knows = f" It knows: {', '.join(known)}." if 0 < len(known) <= 200 else ""
    words = ", ".join(f"'{w}'" for w in unknown)
    them = "it" if len(unknown) == 1 else "them"
    raise PromptError(f"{name}: the model does not know {words}; rephrase without {them}.{knows}")


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


def template_ids(tokenizer, template: str, length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fill-in template as text-stream ids [length] and the positions held [length] (bool).

    ``template`` is a caption with blanks: ``_`` marks one text position to fill, ``_*N`` N positions (for a
    phrase of N tokens); everything else is cleaned and tokenized as a prompt is, held at every step, and ends
    with the tokenizer's end token, then pads (held too). Raises :class:`PromptError` for a template with no
    blank or one longer than the text stream."""
    ids, held, start = [], [], 0
    for blank in [*BLANK.finditer(template), None]:
        text = clean_text(template[start : blank.start() if blank else len(template)])
        if text:
            piece = tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            held += [True] * len(piece)
        if blank is not None:
            count = int(blank.group(1) or 1)
            if count < 1:
                raise PromptError(f"{blank.group(0)!r} asks for no position; write _ or _*N with N >= 1")
            ids += [pad_id] * count
            held += [False] * count
            start = blank.end()
    if all(held):
        raise PromptError("the template has no blank: mark each word to fill with _ (or _*N for N words)")
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        held.append(True)
    if len(ids) > length:
        raise PromptError(
            f"the template is {len(ids)} tokens with its blanks; this model's text stream holds at most {length}. "
            "Shorten it."
        )
    pad = length - len(ids)
    return torch.tensor(ids + [pad_id] * pad), torch.tensor(held + [True] * pad)
