"""Peak memory of one caption request for the largest upload the studio's limits accept.

The limits (``univigu.studio.checks.Limits``) take frames of up to ``max_video_pixels`` (3840x2160) and, at that
size, ``max_decoded_bytes // (3 * pixels)`` frames (43). This script makes such a clip with ffmpeg (its
``testsrc2`` pattern, or ``--noise`` for a noise-heavy one, the largest file for its size), then runs the
studio's ``/caption`` handler on it in a fresh child process (a tiny model: the clip's decoding is what is
measured) and prints one JSON line: ``python_mb``, the child's peak RSS over its peak after a warm-up request on
a small clip; ``ffmpeg_mb``, the largest peak RSS of the ffmpeg processes the request ran (each measured by a
small wrapper, since a process spawned from a big one inherits its parent's peak in ``ru_maxrss``); and
``request_mb``, their sum: what one request adds to the machine's memory at most.

    python benchmarks/upload_memory.py            # the default limits
    python benchmarks/upload_memory.py --noise    # a noise-heavy clip
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP_SIZE = (5, 16, 16)  # the tiny model's frames, height, width


def worst_upload() -> tuple[int, int, int]:
    """(width, height, frames) of the largest clip the studio's default limits accept."""
    from univigu.studio.checks import Limits

    limits = Limits()
    width, height = 3840, 2160
    assert width * height <= limits.max_video_pixels
    frames = min(limits.max_video_frames, limits.max_decoded_bytes // (width * height * 3))
    return width, height, frames


def make_clip(path: str | os.PathLike, width: int, height: int, frames: int, noise: bool = False) -> int:
    """Write an H.264 mp4 of ffmpeg's test pattern (with heavy noise: ``noise``); returns its size in bytes."""
    import imageio_ffmpeg

    source = f"testsrc2=size={width}x{height}:rate=8"
    filters = ["-vf", "noise=alls=40:allf=t+u"] if noise else []
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", source, *filters]
        + ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return os.path.getsize(path)


def measure(path: str | os.PathLike, timeout: float = 600) -> dict:
    """Caption ``path`` through the studio's handler in a child process; its memory in MB and seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


FFMPEG_WRAPPER = """#!{python}
import resource, subprocess, sys
code = subprocess.call([{ffmpeg!r}, *sys.argv[1:]])
with open({log!r}, "a") as log:
    log.write(f"{{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}} {{sys.argv[1:]}}\\n")
sys.exit(code)
"""


def _measured_ffmpeg(directory: str) -> str:
    """An executable that runs ffmpeg and appends its peak RSS (KiB) to ``directory``/ffmpeg.log; returns the log."""
    import imageio_ffmpeg

    log, wrapper = os.path.join(directory, "ffmpeg.log"), os.path.join(directory, "ffmpeg")
    with open(wrapper, "w") as f:
        f.write(FFMPEG_WRAPPER.format(python=sys.executable, ffmpeg=imageio_ffmpeg.get_ffmpeg_exe(), log=log))
    os.chmod(wrapper, 0o755)
    os.environ["IMAGEIO_FFMPEG_EXE"] = wrapper
    return log


def _child(path: str) -> None:
    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    out = tempfile.mkdtemp(prefix="upload-memory-")
    ffmpeg_log = _measured_ffmpeg(out)

    import numpy as np

    from univigu.offload import Placement
    from univigu.studio.engine import Settings, Studio
    from univigu.studio.tasks import make_handlers
    from univigu.tiny import tiny_pipeline
    from univigu.video_io import write_video

    studio = Studio("tiny", Settings(Placement(device="cpu")), out, pipe=tiny_pipeline(size=CLIP_SIZE))
    caption = make_handlers(studio)["caption"]
    small = write_video(os.path.join(out, "small.mp4"), np.zeros((8, 24, 32, 3), np.uint8), fps=8)
    for _ in caption(small, 0, 1, "", 1, request=None):  # warm-up: the model's first run is in the baseline
        pass
    baseline = peak_mb()
    os.remove(ffmpeg_log)
    start = time.perf_counter()
    *_, (text, notes, *_) = caption(path, 0, 1, "", 1, request=None)
    seconds = time.perf_counter() - start
    with open(ffmpeg_log) as f:
        ffmpeg_mb = max(int(line.split()[0]) for line in f) / 1024
    python_mb = peak_mb() - baseline
    row = {
        "baseline_mb": round(baseline),
        "python_mb": round(python_mb),
        "ffmpeg_mb": round(ffmpeg_mb),
        "request_mb": round(python_mb + ffmpeg_mb),
        "seconds": round(seconds, 2),
        "notes": notes,
    }
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", action="store_true", help="a noise-heavy clip (the largest file for its size)")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child)
    width, height, frames = worst_upload()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.mp4"
        size = make_clip(path, width, height, frames, noise=args.noise)
        row = {"clip": f"{frames} frames of {width}x{height}", "file_mb": round(size / 2**20, 1), **measure(path)}
    row["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    print(json.dumps(row))


if __name__ == "__main__":
    main()
