"""Training augmentation for dense tasks: random scale-crop and horizontal flip.

Both follow MTAN (Liu et al. 2019, "End-to-End Multi-Task Learning with Attention"), whose NYUv2/Cityscapes
training applies a random scale-crop with scale s ∈ {1.0, 1.2, 1.5} and a horizontal flip with probability ½:

* **scale-crop** with scale ``s`` at ``(top, left)``: cut the window of ``h × w = ⌊H/s⌋ × ⌊W/s⌋`` pixels starting at
  ``(top, left)`` and resize it back to ``H × W`` — bilinear for the image (``align_corners=False``), nearest
  neighbour for the label, depth and normals so that no class, depth or normal is invented between pixels, and an
  invalid pixel (label −1, depth 0, zero normal) stays invalid. Nearest neighbour maps output pixel ``d`` to source
  pixel ``⌊(d + ½)·h/H⌋`` (pixel centres aligned, like torch's ``nearest-exact``). Zooming in by ``s`` makes the
  scene look ``s`` times closer, so depth is divided by ``s``; inverse depth (Cityscapes) is therefore *multiplied*
  by ``s`` — the same geometry. (MTAN's code divides Cityscapes' inverse depth by ``s`` as well; we keep the
  physically consistent rule and note the difference.) Normals are renormalised to unit length where valid (a no-op
  up to rounding with nearest neighbour, but it keeps the invariant explicit).
* **horizontal flip**: mirror every map along the width; the x component of the normals changes sign.

Randomness and reproducibility: parameters are drawn with torch from a ``torch.Generator``. Inside a DataLoader
worker, :func:`augmentation_generator` returns a generator private to that worker, seeded from the worker's seed
(``get_worker_info().seed`` = ``torch.initial_seed()`` in the worker = the loader's base seed + worker id, where the
base seed is drawn from the loader's ``generator`` or torch's global RNG at each epoch). In the main process
(``num_workers=0``) it returns ``None``, meaning torch's global RNG, which the training loop reseeds every epoch. So a
run is reproducible given its seed and ``num_workers``, and augmentation differs from epoch to epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import get_worker_info

from taskbalance.data.dense_sample import DenseSample

MTAN_SCALES: tuple[float, ...] = (1.0, 1.2, 1.5)
"""Scale-crop factors of MTAN's training augmentation (Liu et al. 2019)."""


def crop_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The ``(⌊H/s⌋, ⌊W/s⌋)`` window (at least 1 × 1) that a scale-crop with scale ``s`` cuts.

    Example:
        >>> crop_size((288, 384), 1.5), crop_size((12, 16), 1.2)
        ((192, 256), (10, 13))
    """
    if not scale >= 1.0:
        raise ValueError(f"scale-crop scale must be ≥ 1 (a zoom in), got {scale}")
    height, width = size
    return max(1, int(height / scale)), max(1, int(width / scale))


def nearest_indices(source: int, target: int) -> Tensor:
    """Source pixel of each of ``target`` output pixels when resizing ``source`` pixels: ``⌊(d + ½)·source/target⌋``.

    Example:
        >>> nearest_indices(4, 6).tolist()
        [0, 1, 1, 2, 3, 3]
    """
    positions = (torch.arange(target, dtype=torch.float64) + 0.5) * (source / target)
    return positions.floor().long().clamp(max=source - 1)


def _resize_nearest(maps: Tensor, size: tuple[int, int]) -> Tensor:
    rows = nearest_indices(maps.shape[-2], size[0])
    cols = nearest_indices(maps.shape[-1], size[1])
    return maps[..., rows[:, None], cols[None, :]]


def _resize_bilinear(image: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def _unit_where_valid(normals: Tensor) -> Tensor:
    norm = normals.square().sum(dim=0, keepdim=True).sqrt()
    # Dividing the zero vectors by 1 keeps them zero (invalid) without a NaN from 0/0.
    return normals / torch.where(norm > 0, norm, torch.ones_like(norm))


def scale_crop(sample: DenseSample, scale: float, top: int, left: int, *, inverse_depth: bool = False) -> DenseSample:
    """Cut the ``⌊H/s⌋ × ⌊W/s⌋`` window at ``(top, left)`` and resize it back to ``H × W`` (module docstring).

    Depth is divided by ``s`` (inverse depth multiplied by ``s`` when ``inverse_depth``).

    Example:
        >>> import torch
        >>> sample = DenseSample(torch.rand(3, 6, 6), depth=torch.full((1, 6, 6), 3.0))
        >>> zoomed = scale_crop(sample, 1.5, top=1, left=2)
        >>> zoomed.image.shape, zoomed.depth.unique().tolist()
        (torch.Size([3, 6, 6]), [2.0])
    """
    size = sample.size
    height, width = crop_size(size, scale)
    if not (0 <= top <= size[0] - height and 0 <= left <= size[1] - width):
        raise ValueError(
            f"crop window {height}×{width} at (top={top}, left={left}) does not fit in an image of size {size}"
        )
    window = (slice(top, top + height), slice(left, left + width))
    image = _resize_bilinear(sample.image[:, window[0], window[1]], size)
    label = None if sample.label is None else _resize_nearest(sample.label[window], size)
    depth = None
    if sample.depth is not None:
        factor = scale if inverse_depth else 1.0 / scale
        depth = _resize_nearest(sample.depth[:, window[0], window[1]], size) * factor
    normals = None
    if sample.normals is not None:
        normals = _unit_where_valid(_resize_nearest(sample.normals[:, window[0], window[1]], size))
    return DenseSample(image, label, depth, normals)


def horizontal_flip(sample: DenseSample) -> DenseSample:
    """Mirror every map along the width; the normals' x component changes sign.

    Example:
        >>> import torch
        >>> normals = torch.tensor([[[0.6, 0.0]], [[0.0, 0.0]], [[0.8, 0.0]]])  # [3, 1, 2]: one valid pixel
        >>> horizontal_flip(DenseSample(torch.zeros(3, 1, 2), normals=normals)).normals[:, 0, 1].tolist()
        [-0.6000000238418579, 0.0, 0.800000011920929]
    """

    def mirror(maps: Tensor | None) -> Tensor | None:
        return None if maps is None else maps.flip(-1)

    normals = mirror(sample.normals)
    if normals is not None:
        # 0 − x rather than −x: invalid (zero) normals stay +0.0 instead of becoming −0.0.
        normals = torch.cat([0.0 - normals[:1], normals[1:]])
    return DenseSample(sample.image.flip(-1), mirror(sample.label), mirror(sample.depth), normals)


class DenseAugmentation:
    """Random scale-crop (scale drawn uniformly from ``scales``, window position uniform) then a random flip.

    Args:
        scales: the scale factors, each ≥ 1 (default MTAN's {1.0, 1.2, 1.5}).
        flip_probability: probability of the horizontal flip (default ½).
        inverse_depth: the depth maps hold inverse depth (multiplied by the scale instead of divided).

    Example:
        >>> import torch
        >>> augment = DenseAugmentation()
        >>> sample = DenseSample(torch.rand(3, 12, 16), depth=torch.full((1, 12, 16), 6.0))
        >>> out = augment(sample, torch.Generator().manual_seed(0))
        >>> out.image.shape, out.depth.unique().item() in (6.0, 5.0, 4.0)
        (torch.Size([3, 12, 16]), True)
    """

    def __init__(
        self, scales: Sequence[float] = MTAN_SCALES, flip_probability: float = 0.5, *, inverse_depth: bool = False
    ) -> None:
        if not scales or any(not s >= 1.0 for s in scales):
            raise ValueError(f"scales must be a non-empty sequence of numbers ≥ 1, got {list(scales)}")
        if not 0.0 <= flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {flip_probability}")
        self.scales = tuple(float(s) for s in scales)
        self.flip_probability = float(flip_probability)
        self.inverse_depth = inverse_depth

    def __call__(self, sample: DenseSample, generator: torch.Generator | None = None) -> DenseSample:
        """Augment one sample with parameters drawn from ``generator`` (None: torch's global RNG)."""
        scale = self.scales[int(torch.randint(len(self.scales), (), generator=generator))]
        height, width = crop_size(sample.size, scale)
        top = int(torch.randint(sample.size[0] - height + 1, (), generator=generator))
        left = int(torch.randint(sample.size[1] - width + 1, (), generator=generator))
        flip = float(torch.rand((), generator=generator)) < self.flip_probability
        sample = scale_crop(sample, scale, top, left, inverse_depth=self.inverse_depth)
        return horizontal_flip(sample) if flip else sample

    def __repr__(self) -> str:
        return (
            f"DenseAugmentation(scales={self.scales}, flip_probability={self.flip_probability}, "
            f"inverse_depth={self.inverse_depth})"
        )


_worker_generator: tuple[tuple[int, int], torch.Generator] | None = None


def augmentation_generator() -> torch.Generator | None:
    """The generator augmentation draws from in this process (module docstring).

    In a DataLoader worker: a generator private to the worker, seeded with the worker's seed and re-seeded when the
    worker (process id, seed) changes. In the main process: None, i.e. torch's global RNG.
    """
    global _worker_generator
    info = get_worker_info()
    if info is None:
        return None
    key = (os.getpid(), int(info.seed))
    if _worker_generator is None or _worker_generator[0] != key:
        _worker_generator = (key, torch.Generator().manual_seed(int(info.seed)))
    return _worker_generator[1]
