"""The two sentence forms of ShapesWorld, their exact parsers, and word-level tokens.

Brief prompt:      "a {color} {shape} {motion}"
Detailed caption:  "a {size} {color} {shape} at the {cell} {motion} on a {background} background."
    with a second object, the final "." becomes
                   ", and a {size} {color} {shape} at the {cell} {motion}."

Parsing is exact: lower case, single spaces, "," and "." glued to the previous word. Only
leading/trailing whitespace is forgiven. The parser checks the grammar only, not the world's
rules (a caption whose second object repeats the main colour still parses; scoring judges it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .spec import BACKGROUNDS, CELLS, COLORS, MOTIONS, SHAPES, SIZES, ObjectSpec, Scene

PUNCTUATION = (",", ".")


@dataclass(frozen=True)
class ParsedObject:
    """An object as a detailed caption describes it (all fields are vocabulary phrases)."""

    color: str
    shape: str
    size: str
    cell: str
    motion: str


@dataclass(frozen=True)
class ParsedCaption:
    """A parsed detailed caption: main object fields, background, optional second object."""

    color: str
    shape: str
    motion: str
    size: str
    cell: str
    background: str
    second: ParsedObject | None

    @property
    def main(self) -> ParsedObject:
        """The main object as a ParsedObject."""
        return ParsedObject(self.color, self.shape, self.size, self.cell, self.motion)


@dataclass(frozen=True)
class ParsedPrompt:
    """A parsed brief prompt."""

    color: str
    shape: str
    motion: str


def _alternation(phrases: list[str]) -> str:
    # longest first, so "top left" is tried before "top"; backtracking would also cope
    return "(" + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True)) + ")"


_SIZE, _COLOR, _SHAPE = _alternation(list(SIZES)), _alternation(list(COLORS)), _alternation(SHAPES)
_CELL, _MOTION, _BG = _alternation(CELLS), _alternation(MOTIONS), _alternation(list(BACKGROUNDS))
_OBJECT = f"a {_SIZE} {_COLOR} {_SHAPE} at the {_CELL} {_MOTION}"
_CAPTION_RE = re.compile(f"{_OBJECT} on a {_BG} background(?:, and {_OBJECT})?\\.")
_PROMPT_RE = re.compile(f"a {_COLOR} {_SHAPE} {_MOTION}")


def _object_phrase(obj: ParsedObject) -> str:
    return f"a {obj.size} {obj.color} {obj.shape} at the {obj.cell} {obj.motion}"


def _parsed_object(obj: ObjectSpec) -> ParsedObject:
    return ParsedObject(obj.color, obj.shape, obj.size, obj.cell, obj.motion)


def describe(scene: Scene) -> ParsedCaption:
    """The caption fields of a scene (what `parse_caption(detailed_caption(scene))` returns)."""
    main = scene.main
    second = None if scene.second is None else _parsed_object(scene.second)
    return ParsedCaption(main.color, main.shape, main.motion, main.size, main.cell, scene.background, second)


def format_caption(caption: ParsedCaption) -> str:
    """Write caption fields as a detailed caption; inverse of `parse_caption`."""
    text = f"{_object_phrase(caption.main)} on a {caption.background} background"
    if caption.second is not None:
        text += f", and {_object_phrase(caption.second)}"
    return text + "."


def brief_prompt(scene: Scene) -> str:
    """The brief prompt of a scene, e.g. "a red circle moves right"."""
    return f"a {scene.main.color} {scene.main.shape} {scene.main.motion}"


def detailed_caption(scene: Scene) -> str:
    """The detailed caption of a scene (main object, background, then the second object)."""
    return format_caption(describe(scene))


def parse_caption(text: str) -> ParsedCaption | None:
    """Parse a detailed caption; None unless it follows the grammar exactly."""
    match = _CAPTION_RE.fullmatch(text.strip())
    if match is None:
        return None
    size, color, shape, cell, motion, background, *rest = match.groups()
    second = None if rest[0] is None else ParsedObject(rest[1], rest[2], rest[0], rest[3], rest[4])
    return ParsedCaption(color, shape, motion, size, cell, background, second)


def parse_prompt(text: str) -> ParsedPrompt | None:
    """Parse a brief prompt; None unless it follows the grammar exactly."""
    match = _PROMPT_RE.fullmatch(text.strip())
    return None if match is None else ParsedPrompt(*match.groups())


def tokenize_words(text: str) -> list[str]:
    """Split on whitespace, with "," and "." as tokens of their own."""
    for mark in PUNCTUATION:
        text = text.replace(mark, f" {mark} ")
    return text.split()


def detokenize_words(tokens: list[str]) -> str:
    """Inverse of `tokenize_words` on well-formed sentences: join by spaces, glue "," and "."."""
    text = " ".join(tokens)
    for mark in PUNCTUATION:
        text = text.replace(f" {mark}", mark)
    return text


def _vocabulary() -> list[str]:
    phrases = [*SIZES, *COLORS, *SHAPES, *CELLS, *MOTIONS, *BACKGROUNDS]
    glue = "a at the on background , and ."
    return sorted({tok for phrase in [*phrases, glue] for tok in tokenize_words(phrase)})


VOCABULARY: list[str] = _vocabulary()
