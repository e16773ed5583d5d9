"""One image of a dense-prediction dataset (NYUv2, Cityscapes) with whichever per-pixel targets it has."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class DenseSample:
    """An image and its per-pixel targets, all at the same spatial size ``H × W``.

    Attributes:
        image: ``[3, H, W]`` float32 in [0, 1].
        label: ``[H, W]`` int64 class indices, −1 = ignore; None when not loaded.
        depth: ``[1, H, W]`` float32 depth (or inverse depth), 0 = no ground truth; None when not loaded.
        normals: ``[3, H, W]`` float32 unit vectors (x, y, z), the zero vector = no ground truth; None when not loaded.

    Example:
        >>> import torch
        >>> sample = DenseSample(torch.zeros(3, 2, 4), label=torch.full((2, 4), -1))
        >>> sample.size
        (2, 4)
    """

    image: Tensor
    label: Tensor | None = None
    depth: Tensor | None = None
    normals: Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        """Spatial size ``(H, W)``."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])
