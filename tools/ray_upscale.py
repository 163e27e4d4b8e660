"""Upscale every image of a folder on Ray Data: one Upscaler per actor, results written as <stem>_x<factor>.<ext>.

    python tools/ray_upscale.py --input photos --output-dir out --factor 2 [--actors 2] [--threads-per-actor 1]
    python tools/ray_upscale.py ... --address ray://head:10001   # a running cluster instead of a local Ray

Ray is an optional extra, not a requirement of the project: pip install "ray[data]==2.60.0". The files are
read with Ray Data's read_binary_files, and each actor decodes, upscales and writes its photos in their own
format (8 or 16 bits, grey, colour or colour+alpha). Pixels are taken as stored: unlike `python -m srcnn`, this
example neither turns photos upright by their EXIF orientation nor carries their metadata. Without --address it
starts a local Ray with actors x threads-per-actor CPUs. On a cluster, every node needs this project and its
environment, and --input and --output-dir must be on storage that every node sees.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from srcnn.core import Factor, SrcnnError  # noqa: E402
from srcnn.images import IMAGE_SUFFIXES, write_image  # noqa: E402
from srcnn.plan import RESULT, result_names  # noqa: E402

RAY_REQUIREMENT = "ray[data]==2.60.0"
BATCH_SIZE = 4  # photos per call of an actor: small, as each photo is a lot of work and memory


def swap_red_blue(pixels: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) <-> the Upscaler's RGB(A); grey stays as it is. Its own inverse."""
    if pixels.ndim == 2:
        return pixels
    return np.ascontiguousarray(pixels[:, :, [2, 1, 0, 3][:pixels.shape[2]]])


class UpscaleBatch:
    """The callable class map_batches runs in each actor: __init__ (once per actor) makes the Upscaler, whose
    ONNX Runtime session is then built on its first photo and kept for the rest."""

    def __init__(self, factor: str, output_dir: str, threads: int) -> None:
        from srcnn import Upscaler

        self.upscaler = Upscaler(threads=threads)
        self.factor = Factor.parse(factor)
        self.output_dir = Path(output_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """batch: the files' bytes and paths -> per photo, its result's path or why it has none. The results
        are written here, by the actor: one photo that cannot be read must not stop a whole collection."""
        results: list[str] = []
        errors: list[str] = []
        for data, path in zip(batch["bytes"], batch["path"], strict=True):
            try:
                results.append(str(self.upscale(data, Path(path))))
                errors.append("")
            except SrcnnError as exc:
                results.append("")
                errors.append(str(exc))
        return {"photo": batch["path"], "result": np.array(results), "error": np.array(errors)}

    def upscale(self, data: bytes, path: Path) -> Path:
        """Decode one file's bytes, upscale it, and write it beside the others in its own format."""
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise SrcnnError(f"cannot read {path} as an image (OpenCV could not decode it)")
        big = swap_red_blue(self.upscaler(swap_red_blue(pixels), self.factor))
        result = self.output_dir / result_names(path.stem, self.factor, path.suffix, check=False)[RESULT]
        write_image(result, big)
        return result


def upscale_folder(input_dir: Path, output_dir: Path, factor: str, actors: int = 2, threads_per_actor: int = 1,
                   address: str | None = None) -> list[dict[str, Any]]:
    """Upscale the images of `input_dir` (not its sub-folders) into `output_dir` on Ray; one row per photo:
    its path, its result's path, and an error message (empty when it succeeded)."""
    import ray

    Factor.parse(factor)  # a bad factor fails here, before Ray starts
    input_dir, output_dir = input_dir.resolve(), output_dir.resolve()  # the workers' current folder is not ours
    if output_dir == input_dir:
        raise SrcnnError(f"--output-dir {output_dir} is the folder of the photos; choose another folder")
    paths = sorted(str(p) for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SrcnnError(f"no images in {input_dir} (expected {', '.join(IMAGE_SUFFIXES)})")
    output_dir.mkdir(parents=True, exist_ok=True)
    # Ray's workers do not see this script's sys.path: tell them where srcnn is (the same path on every node).
    runtime_env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:
        ray.init(num_cpus=actors * threads_per_actor, runtime_env=runtime_env)
    try:
        # Reading files is I/O: num_cpus=0 lets the read tasks run beside actors that hold every CPU (with
        # the default of 1, a cluster whose CPUs all go to the actors waits for ever: ray-project/ray#44687).
        photos = ray.data.read_binary_files(paths, include_paths=True, num_cpus=0)
        results = photos.map_batches(
            UpscaleBatch,
            fn_constructor_kwargs={"factor": factor, "output_dir": str(output_dir), "threads": threads_per_actor},
            compute=ray.data.ActorPoolStrategy(size=actors),  # a fixed pool of actors, each with its own Upscaler
            batch_size=BATCH_SIZE,
            num_cpus=threads_per_actor,  # Ray reserves the CPUs that the actor's ONNX Runtime threads use
        )
        return results.take_all()
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True, metavar="DIR", help="the folder of photos")
    parser.add_argument("--output-dir", type=Path, required=True, metavar="DIR", help="where the results go")
    parser.add_argument("--factor", default="2", help="upscale factor: 2, 2.5 or HEIGHTxWIDTH such as 2x3 (default 2)")
    parser.add_argument("--actors", type=int, default=2, metavar="N", help="actors, one Upscaler each (default 2)")
    parser.add_argument("--threads-per-actor", type=int, default=1, metavar="N",
                        help="ONNX Runtime threads and Ray CPUs per actor (default 1)")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="a running Ray cluster, e.g. ray://head:10001 or auto (default: start a local Ray)")
    args = parser.parse_args()
    try:
        import ray  # noqa: F401  (only to say how to install it when it is missing)
    except ImportError:
        print(f'error: Ray is not installed; it is an optional extra: pip install "{RAY_REQUIREMENT}"',
              file=sys.stderr)
        sys.exit(2)
    if args.actors < 1 or args.threads_per_actor < 1:
        parser.error("--actors and --threads-per-actor must be 1 or more")
    if not args.input.is_dir():
        parser.error(f"--input {args.input}: not a folder")
    start = time.perf_counter()
    try:
        rows = upscale_folder(args.input, args.output_dir, args.factor, args.actors, args.threads_per_actor,
                              args.address)
    except SrcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    seconds = time.perf_counter() - start
    failed = [row for row in rows if row["error"]]
    for row in failed:
        print(f"error: {row['error']}", file=sys.stderr)
    done = len(rows) - len(failed)
    print(f"{done} photos in {seconds:.2f} s ({done / seconds:.2f} photos/s) on {args.actors} actor(s)"
          f" of {args.threads_per_actor} thread(s); results in {args.output_dir}"
          + (f"; {len(failed)} failed" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
