"""Tiled inference: the three convolutions run tile by tile on the upsampled image, giving the untiled pixels.

Untiled, conv1 holds 64 float32 channels at the output size (2.1 GB for a 4K UHD output). Tiling upsamples the
whole image first (3 channels: cheap, and the sampling grid is the untiled one at every factor, so nothing needs
aligning) and refines it tile by tile, each tile padded by the network's halo of real neighbours. Every kept
pixel then sees exactly the inputs it sees untiled; at the image's edges both see the convolutions' zero padding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from tqdm import tqdm

from srcnn.core import MAX_INPUT_PIXELS, Factor, SrcnnError

TILE_ATOL = 1e-5  # tiled vs untiled on [0, 1]: the same arithmetic per pixel, only the order of sums may differ
TILE_ABOVE_PIXELS = 1024 * 1024  # outputs larger than this are tiled unless --tile 0 (conv1's map: 256 MiB here)
DEFAULT_TILE = 512  # output pixels a side: the halo adds (512 + 12)^2 / 512^2 - 1 = 5% work; ~70 MiB for conv1
MAX_TILED_OUTPUT_PIXELS = MAX_INPUT_PIXELS  # 8192^2: tiled, memory goes to 3-channel float images, 805 MB each
# The smallest --tile: each tile is refined with a halo of 6 pixels all round, so a tile of t pixels costs
# (t + 12)^2 / t^2 of its own work: 1.9x at 32, but 7.4x at 7 and 169x at 1 (minutes for a large image).
MIN_TILE = 32
PROGRESS_MIN_TILES = 8  # fewer tiles finish in about a second: no progress bar

Image = TypeVar("Image")  # a numpy array or a torch.Tensor, (N, C, H, W): both slice and assign alike


@dataclass(frozen=True)
class TileBox:
    """One tile: refine() reads (rows, cols) of the upsampled image and its (keep_rows, keep_cols) are exact."""

    rows: slice  # tile plus halo, clipped to the image
    cols: slice
    keep_rows: slice  # the tile inside refine()'s output of (rows, cols)
    keep_cols: slice
    out_rows: slice  # where the tile goes in the output
    out_cols: slice


def _spans(length: int, tile: int, halo: int) -> list[tuple[slice, slice, slice]]:
    """(read, keep, write) slices along one axis."""
    spans = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        lo, hi = max(start - halo, 0), min(stop + halo, length)
        spans.append((slice(lo, hi), slice(start - lo, stop - lo), slice(start, stop)))
    return spans


def tile_boxes(height: int, width: int, tile: int, halo: int) -> list[TileBox]:
    """Tiles of at most tile x tile output pixels covering a height x width image, row by row."""
    if tile < 1:
        raise SrcnnError(f"tile size {tile}: must be at least 1 pixel")
    return [
        TileBox(rows, cols, keep_rows, keep_cols, out_rows, out_cols)
        for rows, keep_rows, out_rows in _spans(height, tile, halo)
        for cols, keep_cols, out_cols in _spans(width, tile, halo)
    ]


def check_tile(tile: int | None) -> None:
    """Refuse a --tile that is neither automatic (None), never (0) nor a size of at least MIN_TILE pixels."""
    if tile is not None and tile < 0:
        raise SrcnnError(f"--tile {tile}: must be 0 (never tile) or a positive number of output pixels")
    if tile is not None and 0 < tile < MIN_TILE:
        raise SrcnnError(f"--tile {tile}: tiles under {MIN_TILE} pixels spend most of their time on the halo"
                            f" they share with their neighbours; use --tile {MIN_TILE} or more, or 0 for none")


def choose_tile(height: int, width: int, factor: Factor, tile: int | None) -> int | None:
    """The tile size for this image and factor: None (untiled) for `tile` 0 or small outputs.

    tile=None means automatic: DEFAULT_TILE when the output has more than TILE_ABOVE_PIXELS pixels.
    """
    check_tile(tile)
    out_h, out_w = factor.output_size(height, width)
    if tile is None:
        return DEFAULT_TILE if out_h * out_w > TILE_ABOVE_PIXELS else None
    return None if tile == 0 or tile >= max(out_h, out_w) else tile


def _progress(boxes: list[TileBox], shown: bool) -> Iterator[TileBox]:
    """A progress bar over tiles when there are many (tqdm hides it when stderr is not a terminal)."""
    if len(boxes) < PROGRESS_MIN_TILES or not shown:
        return iter(boxes)
    return iter(tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=None, file=sys.stderr))


def refine_in_tiles(refine: Callable[[Image], Image], upsampled: Image, out: Image, tile: int, halo: int,
                    progress: bool = True) -> Image:
    """Fill `out` with refine(upsampled), computed tile by tile; the one tile loop of both runtimes. progress:
    a bar over the tiles when there are many (False: never, as under -q)."""
    height, width = upsampled.shape[2:]  # type: ignore[attr-defined]
    for box in _progress(tile_boxes(height, width, tile, halo), progress):
        refined = refine(upsampled[..., box.rows, box.cols])  # type: ignore[index]  # tile plus halo
        out[..., box.out_rows, box.out_cols] = refined[..., box.keep_rows, box.keep_cols]  # type: ignore[index]
    return out

