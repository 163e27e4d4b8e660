"""Benchmark `python -m srcnn` end to end against a bare ONNX Runtime script on the same photos; time --help.

    python benchmark_cli.py                 # 8 photos of 512x768 at x2, 5 rounds
    python benchmark_cli.py --photos 4 --rounds 3

The bare script is the least a user could write: one ONNX Runtime session on the saved fast graph
(`python -m srcnn --save-onnx`), then for each photo OpenCV reads it, the session runs it whole, OpenCV writes it.
`python -m srcnn` does the same job with everything it adds: the cached graph, headers checked before decoding,
metadata carried, tiles for large outputs, atomic writes, a progress bar. Both run as fresh processes (interpreter
start-up and imports included), alternately, and each round's ratio is taken within the round; the table gives
the medians. The photos are colour photos that ship inside scikit-image, resized.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent
PHOTOS = ("chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel", "stereo_motorcycle",
          "retina")  # scikit-image's colour photos that ship inside the package (cycled for more)
SIZE = (512, 768)  # height, width of each photo: the target case
FACTOR = "2"
HELP_ROUNDS = 10

BARE_SCRIPT = '''
import sys
from pathlib import Path
import cv2
import numpy as np
import onnxruntime as ort

graph, photos, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
factor = np.array([1, 1, 2, 2], np.float32)
out.mkdir(exist_ok=True)
for path in sorted(photos.iterdir()):
    rgb = cv2.imread(str(path))[:, :, ::-1]
    image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    (result,) = session.run(None, {"input": image, "factor": factor})
    pixels = np.rint(np.clip(result[0], 0, 1).transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8)
    cv2.imwrite(str(out / f"{path.stem}_x2{path.suffix}"), pixels)
'''


def cpu_name() -> str:
    """The processor's model name, as figures must name it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def make_photos(folder: Path, count: int) -> None:
    """`count` JPEG photos of SIZE, from scikit-image's packaged photos (cycled when more are asked for)."""
    folder.mkdir(parents=True)
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        rgb = getattr(skdata, name)()
        rgb = rgb[0] if isinstance(rgb, tuple) else rgb  # stereo_motorcycle: (left, right, disparity)
        rgb = np.dstack([rgb] * 3) if rgb.ndim == 2 else rgb[:, :, :3]
        pixels = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), SIZE[::-1], interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:02d}_{name}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])


def timed(command: list[str], cwd: Path) -> float:
    """Seconds a command takes as a fresh process, start-up included (the project importable, installed or not)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8, metavar="N", help="photos to upscale (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="timed rounds (default: %(default)s)")
    args = parser.parse_args()
    product = [sys.executable, "-m", "srcnn"]
    with tempfile.TemporaryDirectory(prefix="srcnn-bench-") as tmp:
        work = Path(tmp)
        make_photos(work / "photos", args.photos)
        (work / "bare.py").write_text(BARE_SCRIPT)
        # The product's cache is warmed and its fast graph saved once: both runs then start from what a user has.
        timed([*product, "--save-onnx", str(work / "fast.onnx")], ROOT)
        ratios, product_s, bare_s = [], [], []
        for _ in range(args.rounds):
            shutil.rmtree(work / "out", ignore_errors=True)
            shutil.rmtree(work / "bare", ignore_errors=True)
            product_s.append(timed([*product, "-i", "photos", "-s", FACTOR, "-o", "out", "-q"], work))
            bare_s.append(timed([sys.executable, "bare.py", "fast.onnx", "photos", "bare"], work))
            ratios.append(product_s[-1] / bare_s[-1])
        help_s = [timed([*product, "--help"], ROOT) for _ in range(HELP_ROUNDS)]
        outputs = sorted(p.name for p in (work / "out").iterdir())
    print(f"{cpu_name()}, {os.cpu_count()} cores; {args.photos} photos of {SIZE[0]}x{SIZE[1]} at"
          f" x{FACTOR}; medians of {args.rounds} rounds ({len(outputs)} results a run)")
    print(f"python -m srcnn          {statistics.median(product_s):7.2f} s")
    print(f"bare ONNX Runtime script {statistics.median(bare_s):7.2f} s")
    print(f"ratio (within a round)   {statistics.median(ratios):7.2f}x  (target: at most 1.30x)")
    print(f"python -m srcnn --help   {statistics.median(help_s):7.3f} s  (target: under 0.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
