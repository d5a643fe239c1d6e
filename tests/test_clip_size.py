"""ClipSizes: a pipeline folder's configs alone give the sizes and grid the loaded pipeline uses."""

import pytest

from univigu.clip_size import ClipSizes
from univigu.loading import load_pipeline


def test_read_from_configs_matches_the_loaded_pipeline(tiny_pipe_dir, tmp_path):
    pipe = load_pipeline(tiny_pipe_dir)
    sizes = ClipSizes.read(tiny_pipe_dir)
    assert sizes == ClipSizes.of(pipe)
    assert ClipSizes.read(str(tmp_path)) is None  # not a pipeline folder: loading it says why

    f, h, w = sizes.trained
    t, s = sizes.frames_step, sizes.size_step
    # the grid is the pipeline's: the same size back, or a ValueError from both
    for size in [(None, None, None), (f + t, h, w + s), (f + 1, h, w), (f, h + 1, w), (f, h, s // 2), (-3, h, w)]:
        try:
            expected = pipe.check_size(*size)
        except ValueError:
            with pytest.raises(ValueError):
                sizes.check(*size)
        else:
            assert sizes.check(*size) == expected

    with pytest.raises(ValueError, match=rf"^--frames must be 1 \+ {t}k \(e.g. {f}\), got {f + 1}$"):
        sizes.check(f + 1, h, w, names=("--frames", "--height", "--width"))
    assert not sizes.larger_than_trained(f, h, w) and sizes.larger_than_trained(f, h, w + s)
    assert sizes.describe() == f"{f} frames at {w}x{h}"
