"""ShapesWorld v1.1 (training/shapesworld) against its description, training/shapesworld/WORLD.md."""

from __future__ import annotations

import dataclasses
import importlib
import json

import numpy as np
import pytest

import training.shapesworld as sw
from training.shapesworld import (
    ObjectSpec,
    ParsedCaption,
    ParsedObject,
    Scene,
    brief_prompt,
    clip_seed,
    describe,
    detailed_caption,
    format_caption,
    iter_split,
    parse_caption,
    render,
    scene_for_seed,
    score_caption,
    score_detection,
)

detect_module = importlib.import_module("training.shapesworld.detect")

SPEC_BACKGROUNDS = {"black": (20, 20, 20), "gray": (128, 128, 128), "white": (235, 235, 235)}
SPEC_COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 70),
    "blue": (50, 90, 230),
    "yellow": (235, 210, 50),
    "purple": (150, 70, 200),
    "cyan": (40, 200, 210),
}
HELD_OUT = {("purple", "triangle"), ("cyan", "circle"), ("yellow", "square")}
EVAL_SPLITS = ("train", "val", "test")


def _scenes(split: str, n: int) -> list[Scene]:
    return [scene for _, scene in iter_split(split, n)]


def _objects(scene: Scene) -> list[ObjectSpec]:
    return [scene.main] if scene.second is None else [scene.main, scene.second]


def _color_mask(clip: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """bool [F, H, W]: pixels exactly of colour rgb."""
    return (clip == np.array(rgb, dtype=np.uint8)).all(-1)


def _example_scene() -> Scene:
    """The spec's example: a large red circle at the left moves right ... small blue square top right."""
    main = ObjectSpec("red", "circle", "large", "moves right", x0=5, y0=22)
    second = ObjectSpec("blue", "square", "small", "stays still", x0=45, y0=2)
    return Scene("gray", main, second)


# ---------------------------------------------------------------- spec constants and renderer


def test_constants_match_spec_table() -> None:
    assert sw.BACKGROUNDS == SPEC_BACKGROUNDS
    assert sw.COLORS == SPEC_COLORS
    assert sw.SIZES == {"small": 12, "large": 20}
    assert sw.SHAPES == ["circle", "square", "triangle"]
    assert sw.MOTIONS == ["moves left", "moves right", "moves up", "moves down", "stays still"]
    assert sw.CELLS[0] == "top left" and sw.CELLS[4] == "center" and sw.CELLS[8] == "bottom right"
    assert (sw.NUM_FRAMES, sw.HEIGHT, sw.WIDTH, sw.FPS, sw.STEP_PX) == (17, 64, 64, 8, 2)
    assert set(sw.HELD_OUT_PAIRS) == HELD_OUT


def test_shape_masks_follow_pixel_centre_rule_on_hand_checked_cases() -> None:
    # side 4, pixel centres at 0.5 .. 3.5: worked out by hand from the spec's definitions
    triangle = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1]]
    circle = [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]]
    np.testing.assert_array_equal(sw.shape_mask("triangle", 4), np.array(triangle, dtype=bool))
    np.testing.assert_array_equal(sw.shape_mask("circle", 4), np.array(circle, dtype=bool))
    assert sw.shape_mask("square", 4).all()


@pytest.mark.parametrize("size", ["small", "large"])
def test_drawn_boxes_have_the_spec_sizes(size: str) -> None:
    side = sw.SIZES[size]
    for shape, area_range in [("circle", (0.75, 0.82)), ("square", (1.0, 1.0)), ("triangle", (0.45, 0.55))]:
        obj = ObjectSpec("red", shape, size, "stays still", x0=10, y0=7)
        mask = _color_mask(render(Scene("black", obj))[0], SPEC_COLORS["red"])
        ys, xs = np.nonzero(mask)
        assert (xs.min(), xs.max() + 1) == (10, 10 + side)  # full width in every shape
        # the triangle's apex row holds no pixel centre; its base is the box's bottom row
        top = 7 + (1 if shape == "triangle" else 0)
        assert (ys.min(), ys.max() + 1) == (top, 7 + side)
        assert area_range[0] <= mask.sum() / side**2 <= area_range[1]
        if shape == "triangle":  # apex at the top centre: the two middle columns
            assert set(xs[ys == top]) == {10 + side // 2 - 1, 10 + side // 2}


def test_background_fills_and_only_palette_colours_appear() -> None:
    for scene in _scenes("train", 40):
        clip = render(scene)
        assert clip.shape == (17, 64, 64, 3) and clip.dtype == np.uint8
        background = SPEC_BACKGROUNDS[scene.background]
        rgbs = [background, *(SPEC_COLORS[o.color] for o in _objects(scene))]
        counts = [_color_mask(clip, rgb).sum() for rgb in rgbs]
        assert min(counts) > 0 and sum(counts) == clip[..., 0].size  # these colours and no others
        boxes = np.zeros(clip.shape[:3], dtype=bool)  # where each object's box is, frame by frame
        for obj in _objects(scene):
            for t in range(17):
                x, y = obj.position(t)
                boxes[t, y : y + obj.side, x : x + obj.side] = True
        assert _color_mask(clip, background)[~boxes].all()  # the background fills the rest


@pytest.mark.parametrize("motion", sw.MOTIONS)
def test_motion_is_two_pixels_per_frame(motion: str) -> None:
    (x_lo, _), (y_lo, _) = sw.sample.start_range(12, motion)
    obj = ObjectSpec("green", "triangle", "small", motion, x0=x_lo, y0=y_lo)
    clip = render(Scene("white", obj))
    masks = _color_mask(clip, SPEC_COLORS["green"])
    dx, dy = sw.spec.MOTION_VECTORS[motion]
    for t in range(1, 17):
        np.testing.assert_array_equal(np.roll(masks[t - 1], (2 * dy, 2 * dx), axis=(0, 1)), masks[t])
    assert masks[0].sum() == masks[16].sum() == sw.shape_mask("triangle", 12).sum()


def test_objects_stay_fully_inside_every_frame_and_start_ranges_are_tight() -> None:
    touches_left = touches_right = 0
    for split in ("train", "compositional"):
        for scene in _scenes(split, 400):
            for obj in _objects(scene):
                for t in range(17):
                    x, y = obj.position(t)
                    assert 0 <= x <= 64 - obj.side and 0 <= y <= 64 - obj.side
                touches_left += obj.x0 == 0
                touches_right += obj.x0 == 64 - obj.side
            # the main object is never occluded, so its full shape is visible in every frame
            counts = _color_mask(render(scene), SPEC_COLORS[scene.main.color]).sum(axis=(1, 2))
            assert (counts == sw.shape_mask(scene.main.shape, scene.main.side).sum()).all()
    assert touches_left > 0 and touches_right > 0  # start positions use the whole frame


def test_main_object_is_drawn_on_top() -> None:
    main = ObjectSpec("red", "square", "large", "stays still", x0=22, y0=22)
    second = ObjectSpec("blue", "square", "small", "moves right", x0=0, y0=26)
    clip = render(Scene("black", main, second))
    t = 9  # second box spans x 18..30, inside the main box from x 22
    assert _color_mask(clip[t], SPEC_COLORS["red"])[22:42, 22:42].all()
    assert _color_mask(clip[t], SPEC_COLORS["blue"]).sum() == 12 * 4  # only x 18..21 still visible


def test_cells_use_box_centre_and_equal_thirds() -> None:
    assert sw.cell_of_point(21, 5) == "top left" and sw.cell_of_point(22, 5) == "top"  # 64/3 = 21.33
    assert sw.cell_of_point(42, 42) == "center" and sw.cell_of_point(43, 43) == "bottom right"
    assert ObjectSpec("red", "circle", "large", "stays still", x0=11, y0=44).cell == "bottom left"
    assert ObjectSpec("red", "circle", "large", "stays still", x0=12, y0=44).cell == "bottom"
    assert {obj.cell for s in _scenes("train", 400) for obj in _objects(s)} == set(sw.CELLS)


# ---------------------------------------------------------------- sampling and splits


def test_scenes_are_deterministic_per_seed() -> None:
    for seed in (0, 7, 20_000_003):
        assert scene_for_seed(seed, "test") == scene_for_seed(seed, "test")
        np.testing.assert_array_equal(render(scene_for_seed(seed, "test")), render(scene_for_seed(seed, "test")))
    assert len({scene_for_seed(s, "train") for s in range(50)}) == 50


def test_split_seed_ranges_are_disjoint() -> None:
    ranges = {s: set(range(clip_seed(s, 0), clip_seed(s, 0) + 1000)) for s in sw.SPLITS}
    for a in sw.SPLITS:
        for b in sw.SPLITS:
            assert a == b or not ranges[a] & ranges[b]
    assert clip_seed("val", 5) == 10_000_005 and sw.split_of_seed(clip_seed("compositional", 9)) == "compositional"
    assert [seed for seed, _ in iter_split("test", 3, start=4)] == [20_000_004, 20_000_005, 20_000_006]
    with pytest.raises(ValueError):
        clip_seed("train", 10_000_000)
    with pytest.raises(ValueError):
        clip_seed("holdout", 0)


def test_held_out_pairs_absent_from_train_val_test_and_main_in_compositional() -> None:
    with_second = 0
    for split in EVAL_SPLITS:
        for scene in _scenes(split, 500):
            assert all((o.color, o.shape) not in HELD_OUT for o in _objects(scene))
            with_second += scene.second is not None
    assert 0.42 < with_second / 1500 < 0.58  # second object with probability 1/2
    compositional = _scenes("compositional", 300)
    assert all((s.main.color, s.main.shape) in HELD_OUT for s in compositional)
    assert {(s.main.color, s.main.shape) for s in compositional} == HELD_OUT
    assert all(s.second is None or (s.second.color, s.second.shape) not in HELD_OUT for s in compositional)


def test_second_object_differs_and_is_apart_in_frame_zero() -> None:
    seconds = [s for s in _scenes("train", 600) + _scenes("compositional", 200) if s.second is not None]
    assert len(seconds) > 300
    for scene in seconds:
        main, second = scene.main, scene.second
        assert second is not None
        assert main.color != second.color and main.shape != second.shape
        gap_x = max(second.x0 - (main.x0 + main.side), main.x0 - (second.x0 + second.side))
        gap_y = max(second.y0 - (main.y0 + main.side), main.y0 - (second.y0 + second.side))
        assert max(gap_x, gap_y) >= 2
    assert min(sw.sample.box_gap(s.main, s.second) for s in seconds if s.second) == 2  # tight, not padded


# ---------------------------------------------------------------- sentences


def test_sentences_match_the_spec_examples() -> None:
    scene = _example_scene()
    assert sw.brief_prompt(scene) == "a red circle moves right"
    assert detailed_caption(scene) == (
        "a large red circle at the left moves right on a gray background, "
        "and a small blue square at the top right stays still."
    )
    single = Scene("white", scene.main)
    assert detailed_caption(single) == "a large red circle at the left moves right on a white background."


def test_every_generated_sentence_parses_and_round_trips() -> None:
    vocab = set(sw.VOCABULARY)
    seen: set[str] = set()
    for split in sw.SPLITS:
        for scene in _scenes(split, 150):
            caption, prompt = detailed_caption(scene), sw.brief_prompt(scene)
            parsed = parse_caption(caption)
            assert parsed == describe(scene)
            assert parsed.second is None or parsed.second.cell == scene.second.cell
            assert format_caption(parsed) == caption
            assert sw.parse_prompt(prompt) == sw.ParsedPrompt(scene.main.color, scene.main.shape, scene.main.motion)
            for text in (caption, prompt):
                tokens = sw.tokenize_words(text)
                assert sw.detokenize_words(tokens) == text
                assert set(tokens) <= vocab
                seen |= set(tokens)
    assert seen == vocab  # the vocabulary holds nothing the sentences never use
    assert sw.VOCABULARY == sorted(sw.VOCABULARY) and {",", ".", "center", "stays"} <= vocab


def test_tokenize_splits_punctuation() -> None:
    text = "a large red circle at the left moves right on a gray background, and a small blue square."
    tokens = sw.tokenize_words(text)
    assert tokens[12:15] == ["background", ",", "and"] and tokens[-2:] == ["square", "."]
    assert sw.detokenize_words(tokens) == text


@pytest.mark.parametrize(
    "text",
    [
        "a large red circle at the left moves right on a gray background",  # no final "."
        "a large red circle at the left moves right on a gray background .",  # "." not glued
        "a large red circle at the left  moves right on a gray background.",  # double space
        "A large red circle at the left moves right on a gray background.",  # upper case
        "a large pink circle at the left moves right on a gray background.",  # unknown colour
        "a large red circle at the middle moves right on a gray background.",  # unknown cell
        "a large red circle at the left moves right on a red background.",  # object colour as bg
        "a red circle moves right",  # the brief form
        "a large red circle at the left moves right on a gray background, and a small blue square.",
        "",
    ],
)
def test_parse_caption_rejects_anything_off_grammar(text: str) -> None:
    assert parse_caption(text) is None


def test_parse_prompt_rejects_detailed_and_malformed() -> None:
    assert sw.parse_prompt("a red circle moves right") is not None
    assert sw.parse_prompt(detailed_caption(_example_scene())) is None
    assert sw.parse_prompt("a red circle moves sideways") is None
    assert sw.parse_prompt("a large red circle moves right") is None


# ---------------------------------------------------------------- detector


def test_detector_reads_rendered_clips_per_attribute() -> None:
    scenes = _scenes("test", 200) + _scenes("compositional", 100)
    rows, ordered, ordered_right = [], 0, 0
    for scene in scenes:
        detection = sw.detect(render(scene))
        rows.append(score_detection(detection, detailed_caption(scene)))
        # independent of the scorer's assignment: every true object is read under its colour
        by_color = {o.color: o for o in detection.objects}
        assert len(detection.objects) == len(_objects(scene))
        for obj in _objects(scene):
            read = by_color.get(obj.color)
            assert read is not None
            assert (read.shape, read.size, read.cell, read.motion) == (
                obj.shape,
                obj.size,
                obj.cell,
                obj.motion,
            )
        if scene.second is not None and detection.order_known:
            ordered += 1
            ordered_right += detection.main.color == scene.main.color
    accuracy = sw.aggregate(rows)
    assert set(accuracy) == set(sw.ALL_ATTRS)
    for attr, value in accuracy.items():
        assert value >= 0.99, (attr, value)
    assert ordered >= 20 and ordered_right == ordered  # occlusion names the main object when it occurs


def test_detector_survives_speckle_and_pixel_noise() -> None:
    rng = np.random.default_rng(0)
    object_rgb = np.array(list(SPEC_COLORS.values()))
    rows = []
    for scene in _scenes("val", 60):
        clip = render(scene).astype(np.int32)
        speckle = rng.random(clip.shape[:3]) < 0.01  # 1 % of pixels turn into random object colours
        clip[speckle] = object_rgb[rng.integers(0, 6, int(speckle.sum()))]
        clip = np.clip(clip + rng.normal(0, 10, clip.shape), 0, 255).astype(np.uint8)
        rows.append(score_detection(sw.detect(clip), detailed_caption(scene)))
    for attr, value in sw.aggregate(rows).items():
        assert value >= 0.95, (attr, value)


def test_despeckle_keeps_every_rendered_shape_whole() -> None:
    for shape in sw.SHAPES:
        for side in (12, 20):
            mask = np.zeros((1, 30, 30), dtype=bool)
            mask[0, 3 : 3 + side, 5 : 5 + side] = sw.shape_mask(shape, side)
            np.testing.assert_array_equal(detect_module.despeckle(mask), mask)
    speck = np.zeros((1, 10, 10), dtype=bool)
    speck[0, 2, 2:4] = True  # a two-pixel line of noise
    assert not detect_module.despeckle(speck).any()


def test_detector_uses_occlusion_to_name_the_main_object() -> None:
    main = ObjectSpec("red", "square", "large", "stays still", x0=22, y0=22)
    second = ObjectSpec("blue", "circle", "small", "moves right", x0=0, y0=26)
    scene = Scene("gray", main, second)
    detection = sw.detect(render(scene))
    assert detection.order_known and detection.main.color == "red" and detection.second.color == "blue"
    # a caption that swaps the roles is wrong about which object is on top
    swapped = Scene("gray", second, main)
    scores = score_detection(detection, detailed_caption(swapped))
    assert scores["color"] == scores["second_color"] == 0 and scores["background"] == 1


def test_detector_on_a_blank_clip_finds_no_object() -> None:
    clip = np.full((17, 64, 64, 3), 128, dtype=np.uint8)
    detection = sw.detect(clip)
    assert detection.background == "gray" and detection.objects == ()
    scores = score_detection(detection, detailed_caption(_example_scene()))
    assert scores["background"] == 1 and scores["color"] == 0 and scores["second_present"] == 0


# ---------------------------------------------------------------- scores


def _changed(parsed: ParsedCaption, attr: str) -> ParsedCaption:
    """The caption with one attribute's phrase swapped for another valid phrase."""
    choices = {
        "color": list(sw.COLORS),
        "shape": sw.SHAPES,
        "motion": sw.MOTIONS,
        "size": list(sw.SIZES),
        "cell": sw.CELLS,
        "background": list(sw.BACKGROUNDS),
    }
    field = attr.removeprefix("second_")
    current = getattr(parsed.second if attr.startswith("second_") else parsed, field)
    new = next(v for v in choices[field] if v != current)
    if attr.startswith("second_"):
        return dataclasses.replace(parsed, second=dataclasses.replace(parsed.second, **{field: new}))
    return dataclasses.replace(parsed, **{field: new})


def test_score_caption_true_unparseable_and_one_word_changed() -> None:
    scenes = [s for s in _scenes("test", 40) if s.second is not None][:5] + _scenes("compositional", 3)
    for scene in scenes:
        truth = describe(scene)
        keys = sw.score_keys(scene.second is not None)
        assert score_caption(detailed_caption(scene), scene) == dict.fromkeys(keys, 1)
        assert score_caption(detailed_caption(scene)[:-1], scene) == dict.fromkeys(keys, 0)
        for attr in keys:
            if attr == "second_present":
                continue
            scores = score_caption(format_caption(_changed(truth, attr)), scene)
            assert scores[attr] == 0 and sum(scores.values()) == len(keys) - 1, attr
    two = next(s for s in scenes if s.second is not None)
    dropped = score_caption(format_caption(dataclasses.replace(describe(two), second=None)), two)
    assert dropped["second_present"] == 0 and dropped["second_color"] == 0 and dropped["color"] == 1
    one = Scene(two.background, two.main)
    extra = score_caption(detailed_caption(two), one)
    assert extra["second_present"] == 0 and "second_color" not in extra and extra["cell"] == 1


def test_score_detection_drops_exactly_the_changed_attribute() -> None:
    scene = _example_scene()
    detection = sw.detect(render(scene))
    truth = describe(scene)
    assert score_detection(detection, truth) == dict.fromkeys(sw.ALL_ATTRS, 1)
    for attr in sw.ALL_ATTRS:
        if attr == "second_present":
            continue
        scores = score_detection(detection, _changed(truth, attr))
        assert scores[attr] == 0 and sum(scores.values()) == len(sw.ALL_ATTRS) - 1, attr
    assert score_detection(detection, "not a caption") == dict.fromkeys(sw.score_keys(False), 0)


def test_prompt_agreement_and_aggregation() -> None:
    caption = detailed_caption(_example_scene())
    agree = sw.score_prompt_agreement
    assert agree(caption, "a red circle moves right") == {"color": 1, "shape": 1, "motion": 1}
    assert agree(caption, "a red square moves right") == {"color": 1, "shape": 0, "motion": 1}
    assert agree("a red circle", "a red circle moves right") == {"color": 0, "shape": 0, "motion": 0}
    with pytest.raises(ValueError):
        sw.score_prompt_agreement(caption, "red circle")
    means = sw.aggregate([{"color": 1, "second_color": 0}, {"color": 0}, {"color": 1}])
    assert means == {"color": pytest.approx(2 / 3), "second_color": 0.0}
    scenes = _scenes("test", 4)
    captions = [detailed_caption(s) for s in scenes]
    captions[1] = captions[1].replace(" a ", " an ", 1)
    assert sw.exact_rate(captions, scenes) == 0.75 and sw.is_exact(captions[0] + " ", scenes[0])


def test_object_scores_need_every_attribute_of_the_object() -> None:
    scene = _example_scene()
    detection = sw.detect(render(scene))
    truth = describe(scene)
    assert sw.object_scores(score_detection(detection, truth)) == {"main_object": 1, "second_object": 1}
    for field in ("color", "shape", "size", "cell", "motion"):
        main_off = sw.object_scores(score_detection(detection, _changed(truth, field)))
        second_off = sw.object_scores(score_detection(detection, _changed(truth, f"second_{field}")))
        assert main_off == {"main_object": 0, "second_object": 1}, field
        assert second_off == {"main_object": 1, "second_object": 0}, field
    # the background belongs to no object; a one-object reference has no second object to score
    assert sw.object_scores(score_detection(detection, _changed(truth, "background"))) == {
        "main_object": 1,
        "second_object": 1,
    }
    alone = dataclasses.replace(scene, second=None)
    assert sw.object_scores(score_caption(detailed_caption(alone), alone)) == {"main_object": 1}
    assert sw.object_scores(score_caption("not a caption", scene)) == {"main_object": 0, "second_object": 0}


def test_object_counts_compare_the_caption_with_the_clip() -> None:
    two = _example_scene()
    one = dataclasses.replace(two, second=None)
    clip_two, clip_one = sw.detect(render(two)), sw.detect(render(one))
    blank = sw.detect(np.full((17, 64, 64, 3), 128, dtype=np.uint8))
    counts = sw.object_counts
    assert counts(detailed_caption(two), clip_two) == {"second_named": 1, "second_drawn": 1, "counts_agree": 1}
    assert counts(detailed_caption(one), clip_one) == {"second_named": 0, "second_drawn": 0, "counts_agree": 1}
    assert counts(detailed_caption(one), clip_two) == {"second_named": 0, "second_drawn": 1, "counts_agree": 0}
    assert counts(detailed_caption(two), clip_one) == {"second_named": 1, "second_drawn": 0, "counts_agree": 0}
    assert counts(detailed_caption(one), blank) == {"second_named": 0, "second_drawn": 0, "counts_agree": 0}
    # a caption that does not parse names no objects: it agrees with no clip, not even a blank one
    assert counts("a red circle", clip_one) == {"second_named": 0, "second_drawn": 0, "counts_agree": 0}
    assert counts("a red circle", blank)["counts_agree"] == 0


def test_shapes_drawn_tell_a_blob_from_a_shape() -> None:
    """Text-to-video's "shapes": per shape asked, the shapes read back and the median fill ratio; the object read
    is the one of the asked colour where the detector's main object is another."""
    from training.shapesworld.score import drawn_main, shapes_drawn

    two = _example_scene()  # a main and a second object of another colour
    detection = sw.detect(render(two))
    assert drawn_main(detection, two.main.color).color == two.main.color
    assert drawn_main(detection, two.second.color).color == two.second.color
    assert drawn_main(detection, "no such colour") == detection.main
    square = dataclasses.replace(detection.objects[0], shape="square", fill_ratio=0.98)
    blob = dataclasses.replace(detection.objects[0], shape="circle", fill_ratio=0.7)
    shapes = shapes_drawn(["square", "square", "square", "circle"], [square, blob, None, blob])
    assert shapes == {
        "circle": {"drawn": {"circle": 1}, "fill_median": 0.7},
        "square": {"drawn": {"circle": 1, "none": 1, "square": 1}, "fill_median": 0.84},
    }


def test_brief_prompt_video_is_read_from_the_object_it_asks_for() -> None:
    """Text-to-video from a brief prompt: colour, shape and motion read from the drawn object that matches most of
    them, whichever the detector puts first; nothing drawn, or the wrong object alone, scores 0."""
    from training.shapesworld.evaluate import markdown_table
    from training.shapesworld.score import prompt_drawn

    two = _example_scene()
    detection = sw.detect(render(two))
    for obj in (two.main, two.second):
        assert prompt_drawn(detection, f"a {obj.color} {obj.shape} {obj.motion}") == {
            "color": 1,
            "shape": 1,
            "motion": 1,
        }
    alone = sw.detect(render(dataclasses.replace(two, second=None)))
    other = next(c for c in sw.COLORS if c not in (two.main.color, two.second.color))
    assert prompt_drawn(alone, f"a {other} {two.main.shape} {two.main.motion}") == {
        "color": 0,
        "shape": 1,
        "motion": 1,
    }
    wrong = f"a {other} {two.second.shape} {two.second.motion}"  # only the second object has this shape and motion
    assert two.second.shape != two.main.shape and two.second.motion != two.main.motion
    assert prompt_drawn(alone, wrong) == {"color": 0, "shape": 0, "motion": 0}
    blank = sw.detect(np.full((17, 64, 64, 3), 128, dtype=np.uint8))
    assert prompt_drawn(blank, brief_prompt(two)) == {"color": 0, "shape": 0, "motion": 0}
    with pytest.raises(ValueError, match="not a brief prompt"):
        prompt_drawn(detection, detailed_caption(two))
    scores = [{"color": 1, "shape": int(i < 50), "motion": 1} for i in range(200)]
    result = {
        "name": "m",
        "split": "test",
        "text_to_video_brief": {"attrs": sw.aggregate(scores), "all3": 0.25, "per_clip": {"scores": scores}},
    }
    text = markdown_table([result])
    assert "| text-to-video from the brief prompt: shape | 25.0 [19.5–31.4] |" in text
    assert "| text-to-video from the brief prompt: all three | 25.0 [19.5–31.4] |" in text


def test_table_shows_object_rows_and_the_two_object_share() -> None:
    from training.shapesworld.evaluate import markdown_table

    counts = [{"second_named": int(i < 90), "second_drawn": int(i < 110), "counts_agree": 1} for i in range(200)]
    scores = [dict.fromkeys(sw.score_keys(i % 2 == 0), 1) | {"shape": int(i < 100)} for i in range(200)]
    result = {
        "name": "m",
        "split": "test",
        "joint": {**sw.aggregate(counts), "per_clip": {"counts": counts}},
        "text_to_video": {
            "attrs": sw.aggregate(scores),
            "objects": sw.aggregate(sw.object_scores(r) for r in scores),
            "per_clip": {"scores": scores},
        },
    }
    text = markdown_table([result])
    assert "| joint: captions naming a second object | 45.0 [38.3–51.9] | ≈ 50 |" in text
    assert "| joint: clips showing a second object | 55.0 [48.1–61.7] | ≈ 50 |" in text
    assert "| text-to-video: shape | 50.0 [43.1–56.9] | ≥ 80 |" in text
    # the main object is right only where its shape is (100 of 200); the second object always is (100 of 100)
    assert "| text-to-video: main object, all five attributes | 50.0 [43.1–56.9] |" in text
    assert "| text-to-video: second object, all five attributes | 100.0 [96.3–100.0] |" in text
    # results written before the counts kept the captions' share alone
    old = {"name": "v1", "split": "test", "joint": {"second_named": 0.45, "per_clip": {"second_named": [1, 0]}}}
    assert "| joint: captions naming a second object | 45.0 [9.5–90.5] | ≈ 50 |" in markdown_table([old])


# ---------------------------------------------------------------- export


def test_caption_order_counts_only_where_the_clip_shows_it() -> None:
    """v1.1: a two-object clip shows which object is main only where they overlap (main is drawn on top)."""
    main = ObjectSpec(color="red", shape="circle", size="large", motion="moves right", x0=4, y0=20)
    second = ObjectSpec(color="blue", shape="square", size="small", motion="stays still", x0=40, y0=24)
    meets = Scene(background="gray", main=main, second=second)  # main slides over the second: order shows
    apart = dataclasses.replace(meets, main=dataclasses.replace(main, motion="stays still"))
    alone = dataclasses.replace(meets, second=None)
    assert sw.order_visible(meets) and not sw.order_visible(apart) and sw.order_visible(alone)
    keys = sw.score_keys(True)

    def swapped(scene: Scene) -> str:
        return detailed_caption(dataclasses.replace(scene, main=scene.second, second=scene.main))

    # apart: the other order is as right as the drawing order, on every attribute and the exact sentence
    assert score_caption(swapped(apart), apart) == dict.fromkeys(keys, 1)
    assert sw.is_exact(swapped(apart), apart) and sw.is_exact(detailed_caption(apart), apart)
    # meets: the other order names the wrong object first; it scores only what the two objects share
    wrong = score_caption(swapped(meets), meets)
    assert wrong["background"] == wrong["second_present"] == 1
    assert all(wrong[a] == 0 for a in keys if a not in ("background", "second_present"))
    assert not sw.is_exact(swapped(meets), meets) and sw.is_exact(detailed_caption(meets), meets)
    # the matching picks the better assignment per caption, not per attribute: the second object described
    # first, with its colour wrong, still matches it (4 of 5 attributes beat main's 0) ...
    parsed = parse_caption(swapped(apart))
    off = dataclasses.replace(parsed, color="green")
    scores = score_caption(format_caption(off), apart)
    assert scores["color"] == 0 and sum(scores.values()) == len(keys) - 1
    # ... and a caption naming one object only is matched to whichever of the two it describes
    only_second = score_caption(format_caption(dataclasses.replace(parsed, second=None)), apart)
    assert only_second["color"] == only_second["cell"] == 1 and only_second["second_present"] == 0
    assert score_caption(format_caption(dataclasses.replace(parsed, second=None)), meets)["color"] == 0
    # one-object clips: unchanged from v1 (the two-object caption of `meets` names red circle first)
    truth = detailed_caption(alone)
    assert score_caption(truth, alone) == dict.fromkeys(sw.score_keys(False), 1)
    assert score_caption(swapped(meets), alone)["color"] == 0 and not sw.is_exact(swapped(meets), alone)


def test_wilson_and_bootstrap_intervals() -> None:
    intervals = importlib.import_module("training.shapesworld.intervals")
    wilson = intervals.wilson_interval
    # textbook values (Wilson 1927; e.g. Newcombe 1998, table I): 0/10 and 5/10
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson(200, 200)
    assert hi == 1.0 and 0.97 < lo < 0.99  # not degenerate at all-correct, unlike the normal approximation
    with pytest.raises(ValueError):
        wilson(11, 10)
    # bootstrap of the mean of attribute means: NaN cells (attributes a clip does not have) are skipped
    m = intervals.score_matrix([{"a": 1, "b": 0}, {"a": 1}, {"a": 0, "b": 1}, {"a": 1}], ["a", "b"])
    assert np.isnan(m[1, 1]) and intervals.mean_of_means(m) == pytest.approx((0.75 + 0.5) / 2)
    coin = np.array([[1.0], [0.0]] * 100)
    lo, hi = intervals.bootstrap_interval(coin)
    assert intervals.bootstrap_interval(coin) == (lo, hi)  # seeded
    assert lo < 0.5 < hi and (lo, hi) == pytest.approx(wilson(100, 200), abs=0.015)  # agrees with Wilson
    wide = intervals.bootstrap_interval(coin[:20])
    assert wide[1] - wide[0] > 2 * (hi - lo)  # 10x fewer clips: about sqrt(10)x wider
    assert intervals.bootstrap_interval(np.ones((50, 3))) == (1.0, 1.0)


def test_evaluator_table_prints_intervals_from_per_clip_scores() -> None:
    from training.shapesworld.evaluate import markdown_table

    scores = [{"color": int(i < 150), "background": 1} for i in range(200)]
    brief = [dict.fromkeys(sw.PROMPT_ATTRS, 0)] * 200
    per_clip = {"scores": scores, "exact": [int(i < 20) for i in range(200)], "brief": brief}
    result = {
        "name": "m",
        "split": "test",
        "captioning": {"attrs": sw.aggregate(scores), "exact": 0.1, "brief_grammar": sw.aggregate(brief)},
    }
    result["captioning"]["per_clip"] = per_clip
    old = {"name": "v1", "split": "test", "captioning": {"attrs": {"color": 0.5}, "exact": 0.0, "brief_grammar": {}}}
    lines = markdown_table([result, old]).splitlines()
    assert lines[0] == "| metric | m (test) | v1 (test) | bar (test) |"
    row = next(line for line in lines if line.startswith("| captioning: main colour |"))
    assert row == "| captioning: main colour | 75.0 [68.6–80.5] | 50.0 | ≥ 90 |"  # Wilson 150/200; none in v1
    assert "| captioning: background | 100.0 [98.1–100.0] | – |" in "\n".join(lines)
    assert "| captioning: exact sentence | 10.0 [6.6–14.9] | 0.0 |" in "\n".join(lines)
    # a mean over attributes (here only background is a detail attribute, always right): the bootstrap's
    result["captioning"]["detail_attrs"] = 1.0
    assert "| captioning: detail attributes (mean) | 100.0 [100.0–100.0] |" in markdown_table([result])


def test_main_posterior_is_calibrated_on_the_sampler() -> None:
    """The only-the-second-object-is-redrawn asymmetry: the posterior that the scene's main object is the main
    one beats a coin on sampled scenes, and guessing by it is right as often as it predicts."""
    sample = importlib.import_module("training.shapesworld.sample")
    main = ObjectSpec(color="red", shape="circle", size="large", motion="moves right", x0=4, y0=22)
    rng = np.random.default_rng(7)
    pairs = sample._second_pairs(main.color, main.shape)
    draws = [sample._sample_object(rng, pairs) for _ in range(20_000)]
    accepted = np.mean([sample.box_gap(main, d) >= sample.MIN_GAP_PX for d in draws])
    assert sample._room_for_second(main) == pytest.approx(accepted, abs=0.01)  # exact vs Monte Carlo

    posteriors = []
    while len(posteriors) < 4000:
        scene = sample.sample_scene(rng, "train")
        if scene.second is not None:
            posteriors.append(sw.main_posterior(scene))
    p = np.array(posteriors)
    assert np.log(2 * p).sum() > 5.0  # log-likelihood ratio against a coin, in nats (about 14-32 by seed)
    likelier = np.maximum(p, 1 - p)
    sd = np.sqrt((likelier * (1 - likelier)).sum()) / len(p)
    assert abs(np.mean(p >= 0.5) - likelier.mean()) < 3 * sd
    assert sw.main_posterior(dataclasses.replace(scene, second=None)) == 1.0


def test_export_writes_metadata_and_lossless_videos(tmp_path) -> None:
    export = importlib.import_module("training.shapesworld.export")
    metadata = export.export_dataset(tmp_path, "val", 3, start=2)
    rows = [json.loads(line) for line in metadata.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [10_000_002, 10_000_003, 10_000_004]
    for row in rows:
        scene = scene_for_seed(row["seed"], "val")
        assert row == {
            "video": f"videos/{row['seed']}.mp4",
            "prompt": sw.brief_prompt(scene),
            "caption": detailed_caption(scene),
            "seed": row["seed"],
            "split": "val",
        }
        np.testing.assert_array_equal(export.read_video(tmp_path / row["video"]), render(scene))
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["metadata.jsonl", "videos", *(f"{r['seed']}.mp4" for r in rows)]
    )  # no temporary files left behind


def test_parsed_types_are_plain_dataclasses() -> None:
    parsed = parse_caption(detailed_caption(_example_scene()))
    assert isinstance(parsed, ParsedCaption) and isinstance(parsed.second, ParsedObject)
    assert parsed.main == ParsedObject("red", "circle", "large", "left", "moves right")
