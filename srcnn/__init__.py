"""srcnn: the product built on srcnn_dynamic.py: an upscaler on ONNX Runtime, its command line and its Python API.

    from srcnn import Upscaler
    big = Upscaler()(rgb, 2.5)   # (H, W, 3) uint8 RGB -> (floor(2.5 H), floor(2.5 W), 3)
"""

from __future__ import annotations

from typing import Any

__all__ = ["Upscaler"]


def __getattr__(name: str) -> Any:
    """`srcnn.Upscaler`, loaded on first use: `python -m srcnn --help` must not pay for ONNX Runtime."""
    if name == "Upscaler":
        from srcnn.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module 'srcnn' has no attribute {name!r}")
