"""A map-style dataset of CelebA images (resized with Pillow) and their binary attributes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from taskbalance.data.errors import DatasetFormatError


def load_face(path: Path, size: int, center_crop: bool) -> Tensor:
    """The image at ``path`` as ``[3, size, size]`` float32 in [0, 1].

    The whole image is resized to ``size × size`` with Pillow's bilinear filter (antialiased when shrinking); with
    ``center_crop`` the central square (side = the shorter side) is cut first, which keeps the aspect ratio.
    """
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except OSError as error:
        raise DatasetFormatError(f"{path}: not a readable image ({error}); expected a JPEG face image") from None
    if center_crop:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


class CelebADataset(Dataset[tuple[Tensor, dict[str, Tensor]]]):
    """Items ``(image [3, size, size] float32 in [0, 1], {attribute name: 0-dim float32 0/1 target})``.

    Args:
        image_folder: folder of the aligned images.
        file_names: image file names, in item order.
        attributes: ``[len(file_names), A]`` 0/1 array, column ``j`` belonging to ``attribute_names[j]``.
        attribute_names: the task (attribute) names of the columns.
        size: output side length in pixels.
        center_crop: cut the central square before resizing (see :func:`load_face`).

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (10, 12), (255, 0, 0)).save(folder / "000001.jpg")
        >>> data = CelebADataset(folder, ["000001.jpg"], np.array([[1, 0]]), ["Smiling", "Young"], size=4)
        >>> image, targets = data[0]
        >>> image.shape, targets["Smiling"].item(), targets["Young"].item()
        (torch.Size([3, 4, 4]), 1.0, 0.0)
    """

    def __init__(
        self,
        image_folder: str | Path,
        file_names: Sequence[str],
        attributes: np.ndarray,
        attribute_names: Sequence[str],
        *,
        size: int = 64,
        center_crop: bool = False,
    ) -> None:
        if attributes.shape != (len(file_names), len(attribute_names)):
            raise ValueError(
                f"attributes have shape {attributes.shape}; expected ({len(file_names)}, {len(attribute_names)})"
            )
        if size < 1:
            raise ValueError(f"image size must be ≥ 1, got {size}")
        self.image_folder = Path(image_folder)
        self.file_names = list(file_names)
        self.attribute_names = list(attribute_names)
        self.targets = torch.from_numpy(np.asarray(attributes, dtype=np.float32))
        self.size = size
        self.center_crop = center_crop

    def __len__(self) -> int:
        return len(self.file_names)

    def __getitem__(self, position: int) -> tuple[Tensor, dict[str, Tensor]]:
        if not -len(self) <= position < len(self):
            raise IndexError(f"item {position} out of range for a dataset of {len(self)} items")
        image = load_face(self.image_folder / self.file_names[position], self.size, self.center_crop)
        row = self.targets[position]
        return image, {name: row[j].clone() for j, name in enumerate(self.attribute_names)}

    def __repr__(self) -> str:
        return f"CelebADataset({str(self.image_folder)!r}, items={len(self)}, attributes={len(self.attribute_names)})"
