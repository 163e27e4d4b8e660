"""Training data and metrics: photos bundled with Python packages, their degradation, Y-channel PSNR and SSIM.

The photos ship inside the wheels of scikit-image, scikit-learn, matplotlib and PyWavelets (nothing is
downloaded; docs/training.md names each photo's source and licence). `astronaut`, the source of face.png, is
held out with two more photos as the validation set. Low-resolution inputs are made the way the SR literature
makes them: antialiased bicubic downsampling of a high-resolution image whose sides are multiples of the
factor, saved as 8-bit. Quality is measured on the luma (Y) channel of ITU-R BT.601 with a border of
ceil(factor) pixels cropped, in PSNR (dB) and SSIM.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.metrics import structural_similarity

import srcnn_dynamic as sd

# Natural photos bundled in scikit-image 0.26 (synthetic images, binary masks and thumbnails left out).
VALIDATION_PHOTOS = ("astronaut", "coffee", "camera")  # astronaut: the held-out face; a colour and a grey photo
TRAINING_PHOTOS = (
    "brick", "cell", "chelsea", "clock", "coins", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "retina", "rocket", "stereo_motorcycle", "text",
)  # fmt: skip
# Natural photos inside other wheels, read from the installed package's files without importing it:
# name -> (package, file inside it). Not PyWavelets' `camera` (the held-out camera) nor `aero` (no source named).
PACKAGED_PHOTOS = {
    "china": ("sklearn", "datasets/images/china.jpg"),  # CC BY 2.0, danielbuechele on Flickr
    "flower": ("sklearn", "datasets/images/flower.jpg"),  # CC BY 2.0, vultilion on Flickr
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),  # US Navy photo, public domain
    "ascent": ("pywt", "data/ascent.npz"),  # public-domain-image.com, as scipy.datasets.ascent
}
EXTRA_PHOTOS = tuple(PACKAGED_PHOTOS)  # trained on beside TRAINING_PHOTOS (docs/training.md: what they add)
# Held out for ever: the validation photos, and Set5/Set14 images that packages ship, so that results on those
# sets stay comparable with published ones.
NEVER_TRAINED_ON = (*VALIDATION_PHOTOS, "lena", "lenna", "baboon", "barbara", "monarch", "pepper", "peppers", "zebra")
assert not set(NEVER_TRAINED_ON) & set(TRAINING_PHOTOS + EXTRA_PHOTOS), "held-out photos must not be trained on"

EVAL_FACTORS = ("2", "2.5", "3", "4")  # the factors of the evaluation table
# The soft case: the validation photos blurred by this Gaussian (high-resolution pixels) before degradation, as
# an old or out-of-focus photo is; bicubic then scores 44-45 dB at x2, so a model that sharpens it only loses.
SOFT_SIGMA = 1.0
# The most the model may lose there at x2 on average (dB): the project's target, which train.py's checkpoint choice
# and tests/test_evaluate.py hold it to.
SOFT_LOSS_LIMIT = 1.0
PIXEL_LEVELS = 255.0  # images are 8-bit: inputs are quantised, and PSNR's peak is 255 on the 0-255 Y scale
# ITU-R BT.601 luma from RGB in [0, 1], on the 16-235 scale used by the SR literature's PSNR(Y) (Matlab rgb2ycbcr)
BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
BT601_Y_OFFSET = 16.0


def packaged_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise sd.SrcnnError(f"package {package} is not installed: pip install -r requirements.txt")
    return Path(spec.submodule_search_locations[0]) / relative


def read_packaged_photo(name: str) -> np.ndarray:
    """One of PACKAGED_PHOTOS as an RGB (H, W, 3) or grey (H, W) uint8 array."""
    path = packaged_file(*PACKAGED_PHOTOS[name])
    if path.suffix == ".npz":
        with np.load(path) as archive:  # one array: the image
            return archive[archive.files[0]].astype(np.uint8)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise sd.SrcnnError(f"cannot read {path}")
    return image[:, :, ::-1]  # OpenCV's BGR -> RGB


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as an (H, W, 3) RGB uint8 array; grey photos become three equal channels."""
    image = read_packaged_photo(name) if name in PACKAGED_PHOTOS else getattr(skdata, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity): use the left view
        image = image[0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    assert image.dtype == np.uint8 and image.shape[2] == 3, f"{name}: {image.dtype} {image.shape}"
    return np.ascontiguousarray(image)


def load_photo_tensor(name: str) -> torch.Tensor:
    """A bundled photo as (1, 3, H, W) RGB float32 in [0, 1]."""
    return sd.pixels_to_tensor(load_photo(name))


def quantise(image: torch.Tensor) -> torch.Tensor:
    """Round to the nearest 8-bit level, as saving and reading an 8-bit image does."""
    return torch.round(image.clamp(0.0, 1.0) * PIXEL_LEVELS) / PIXEL_LEVELS


def lr_side(hr_side: int, factor: float) -> int:
    """The largest low-resolution side k <= hr_side / factor such that k * factor is a whole number of pixels,
    and the model's output side (float32 rounding, sd.resized_length) is exactly that number."""
    for k in range(math.floor(hr_side / factor + 1e-9), 0, -1):
        whole = round(k * factor)
        if abs(k * factor - whole) < 1e-6 and sd.resized_length(k, factor) == whole:
            return k
    raise sd.SrcnnError(f"no low-resolution size fits {hr_side} pixels at x{factor:g}")


def pair_size(height: int, width: int, factor: sd.Factor) -> tuple[int, int]:
    """The low-resolution size make_pair cuts from a height x width image; SrcnnError if it is too small."""
    kh, kw = lr_side(height, factor.height), lr_side(width, factor.width)
    if min(kh * factor.height - 2 * math.ceil(factor.height), kw * factor.width - 2 * math.ceil(factor.width)) < 1:
        raise sd.SrcnnError(f"a {height}x{width} image is too small to measure at x{factor.tag}: nothing is left"
                            " once the border is cropped")
    return kh, kw


def make_pair(hr: torch.Tensor, factor: sd.Factor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop hr (N, 3, H, W) to sides that are multiples of the factor and degrade it; return (lr, hr_crop).

    The low-resolution image is the antialiased bicubic downsampling of the crop, quantised to 8 bits. The size is
    given explicitly (k pixels), which is F.interpolate(scale_factor=1/s) without its floating-point rounding.
    """
    kh, kw = pair_size(hr.shape[2], hr.shape[3], factor)
    hr = hr[:, :, : round(kh * factor.height), : round(kw * factor.width)]
    lr = F.interpolate(hr, size=(kh, kw), mode="bicubic", align_corners=False, antialias=True)
    return quantise(lr), hr


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred by a separable Gaussian of `sigma` pixels, edges reflected."""
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=image.dtype) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius,) * 4, mode="reflect")
    rows = F.conv2d(padded, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma on the 16-235 scale without its offset (0 to 219)."""
    weights = images.new_tensor(BT601_Y_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def y_channel(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) RGB in [0, 1] -> (H, W) float64 luma on the 16-235 scale, from the 8-bit image."""
    rgb = quantise(image).double()  # what would be saved: 8-bit levels
    return (luma(rgb) + BT601_Y_OFFSET)[0, 0].numpy()


def crop_border(y: np.ndarray, factor: sd.Factor) -> np.ndarray:
    """The luma without its ceil(factor) border pixels, which bicubic and SRCNN both guess from padding."""
    bh, bw = math.ceil(factor.height), math.ceil(factor.width)
    return y[bh:-bh, bw:-bw]


def psnr_y(reference: torch.Tensor, test: torch.Tensor, factor: sd.Factor) -> float:
    """PSNR in dB of the Y channel, ceil(factor) border pixels cropped."""
    return sd.psnr(crop_border(y_channel(reference), factor), crop_border(y_channel(test), factor), PIXEL_LEVELS)


def ssim_y(reference: torch.Tensor, test: torch.Tensor, factor: sd.Factor) -> float:
    """SSIM of the Y channel with Wang et al.'s settings (Gaussian window, sigma 1.5), border cropped."""
    ref, out = crop_border(y_channel(reference), factor), crop_border(y_channel(test), factor)
    return float(
        structural_similarity(ref, out, data_range=PIXEL_LEVELS, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
    )


@dataclass(frozen=True)
class Scores:
    """Y-PSNR (dB) and SSIM of one result."""

    psnr: float
    ssim: float


def score(reference: torch.Tensor, test: torch.Tensor, factor: sd.Factor) -> Scores:
    """Both measures of `test` against `reference`."""
    return Scores(psnr_y(reference, test, factor), ssim_y(reference, test, factor))


