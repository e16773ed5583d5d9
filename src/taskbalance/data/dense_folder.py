"""One split folder of MTAN's pre-processed NYUv2/Cityscapes layout: ``split/{image,label,depth,normal}/{i}.npy``.

Layout (Liu et al. 2019, MTAN's pre-processed data; one ``.npy`` file per image index ``i``):

* ``image/{i}.npy``: ``H × W × 3`` float in [0, 1];
* ``label/{i}.npy``: ``H × W`` integer-valued (int or float) class index, −1 = ignore;
* ``depth/{i}.npy``: ``H × W × 1`` or ``H × W`` float, 0 = no ground truth;
* ``normal/{i}.npy``: ``H × W × 3`` float unit vectors, the zero vector = no ground truth.

Only the folders of the requested modalities must exist. Every modality must hold exactly the image indices, and
all files of a split share one size ``H × W`` (read from the files, never assumed). File headers are checked when
the folder is opened (cheap: only the ``.npy`` header is read); values are checked when an item is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from taskbalance.data.dense_sample import DenseSample
from taskbalance.data.errors import DatasetFormatError

MODALITIES = ("label", "depth", "normal")
_INDEXED_FILE = re.compile(r"^(0|[1-9][0-9]*)\.npy$")
_IMAGE_RANGE_TOLERANCE = 1e-3


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with path.open("rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (OSError, ValueError) as error:
        raise DatasetFormatError(f"{path}: not a readable .npy file ({error})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"shape {shape} dtype {dtype}"


class DenseFolder:
    """Reads and checks one split folder (e.g. ``root/train``) of the MTAN layout (module docstring).

    Args:
        root: the split folder, e.g. ``data/nyuv2/train``.
        modalities: which of ``label``, ``depth``, ``normal`` to read besides ``image``.
        folder_names: folder of each modality when it differs from the modality's name (e.g. ``label_7``).
        num_classes: labels must lie in {−1, 0, …, num_classes − 1} (None: not checked).

    Attributes:
        indices: the sorted image indices found in ``image/``.
        size: the common spatial size ``(H, W)`` of the split.

    Example:
        >>> import tempfile, numpy as np
        >>> root = Path(tempfile.mkdtemp())
        >>> for modality, array in {"image": np.zeros((2, 3, 3)), "depth": np.ones((2, 3, 1))}.items():
        ...     (root / modality).mkdir()
        ...     np.save(root / modality / "0.npy", array.astype(np.float32))
        >>> folder = DenseFolder(root, ["depth"])
        >>> folder.indices, folder.size, folder.load(0).depth.shape
        ([0], (2, 3), torch.Size([1, 2, 3]))
    """

    def __init__(
        self,
        root: str | Path,
        modalities: Iterable[str],
        *,
        folder_names: dict[str, str] | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.modalities = tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modality(ies) {unknown}; known: {list(MODALITIES)}")
        self.folders = {m: self.root / (folder_names or {}).get(m, m) for m in ("image", *self.modalities)}
        self.num_classes = num_classes
        if not self.root.is_dir():
            raise DatasetFormatError(
                f"{self.root}: missing split folder; expected a folder with sub-folders {sorted(self.folders)}"
            )
        self.indices = self._list_indices(self.folders["image"])
        if not self.indices:
            raise DatasetFormatError(f"{self.folders['image']}: no image files; expected files 0.npy, 1.npy, ...")
        for modality in self.modalities:
            self._check_same_indices(self.folders[modality])
        self.size = self._check_headers()

    @staticmethod
    def _list_indices(folder: Path) -> list[int]:
        if not folder.is_dir():
            raise DatasetFormatError(f"{folder}: missing folder; expected one .npy file per image index")
        indices = []
        for path in folder.iterdir():
            match = _INDEXED_FILE.match(path.name)
            if match is None:
                raise DatasetFormatError(f"{path}: unexpected file; expected only files named <index>.npy")
            indices.append(int(match.group(1)))
        return sorted(indices)

    def _check_same_indices(self, folder: Path) -> None:
        found = set(self._list_indices(folder))
        missing = [i for i in self.indices if i not in found]
        if missing:
            raise DatasetFormatError(
                f"{folder / f'{missing[0]}.npy'}: missing ({len(missing)} file(s) missing in {folder}); "
                f"expected one file per image in {self.folders['image']}"
            )
        extra = sorted(found.difference(self.indices))
        if extra:
            raise DatasetFormatError(
                f"{folder / f'{extra[0]}.npy'}: no matching image {self.folders['image'] / f'{extra[0]}.npy'} "
                f"({len(extra)} such file(s) in {folder})"
            )

    def path(self, modality: str, index: int) -> Path:
        """The file of one modality (``image``, ``label``, ``depth`` or ``normal``) of one image index."""
        return self.folders[modality] / f"{index}.npy"

    def _expected_shapes(self, size: tuple[int, int]) -> dict[str, tuple[tuple[int, ...], ...]]:
        height, width = size
        return {
            "image": ((height, width, 3),),
            "label": ((height, width),),
            "depth": ((height, width, 1), (height, width)),
            "normal": ((height, width, 3),),
        }

    def _check_headers(self) -> tuple[int, int]:
        first = self.path("image", self.indices[0])
        shape, dtype = _npy_header(first)
        if len(shape) != 3 or shape[2] != 3:
            raise DatasetFormatError(f"{first}: {_describe(shape, dtype)}; expected an H × W × 3 image")
        size = (shape[0], shape[1])
        expected = self._expected_shapes(size)
        for modality in ("image", *self.modalities):
            for index in self.indices:
                path = self.path(modality, index)
                shape, dtype = _npy_header(path)
                if shape not in expected[modality]:
                    wanted = " or ".join(str(s) for s in expected[modality])
                    raise DatasetFormatError(
                        f"{path}: {modality} has {_describe(shape, dtype)}; expected shape {wanted} "
                        f"(the size of {first})"
                    )
                allowed_kinds = "iuf" if modality == "label" else "f"
                if dtype.kind not in allowed_kinds:
                    kinds = "an integer or float" if modality == "label" else "a float"
                    raise DatasetFormatError(f"{path}: {modality} has dtype {dtype}; expected {kinds} dtype")
        return size

    def _read(self, modality: str, index: int) -> np.ndarray:
        path = self.path(modality, index)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DatasetFormatError(f"{path}: not a readable .npy file ({error})") from None
        if array.shape not in self._expected_shapes(self.size)[modality]:
            raise DatasetFormatError(
                f"{path}: {modality} has shape {array.shape}; expected the split's size {self.size}"
            )
        return array

    def _image(self, index: int) -> torch.Tensor:
        array = self._read("image", index)
        low, high = float(array.min()), float(array.max())
        if not (-_IMAGE_RANGE_TOLERANCE <= low and high <= 1 + _IMAGE_RANGE_TOLERANCE):
            raise DatasetFormatError(
                f"{self.path('image', index)}: image values span [{low}, {high}]; expected values in [0, 1]"
            )
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))

    def _label(self, index: int) -> torch.Tensor:
        array = self._read("label", index)
        path = self.path("label", index)
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise DatasetFormatError(f"{path}: label has non-integer values; expected class indices or −1 (ignore)")
        values = np.unique(array)
        upper = self.num_classes if self.num_classes is not None else np.inf
        bad = values[(values != -1) & ((values < 0) | (values >= upper))]
        if bad.size:
            raise DatasetFormatError(
                f"{path}: label value {bad[0]:g} out of range; expected −1 (ignore) or 0 … {self.num_classes - 1}"
                if self.num_classes is not None
                else f"{path}: label value {bad[0]:g}; expected −1 (ignore) or a class index ≥ 0"
            )
        return torch.from_numpy(array.astype(np.int64))

    def _finite_maps(self, modality: str, index: int) -> torch.Tensor:
        array = self._read(modality, index)
        if not np.isfinite(array).all():
            raise DatasetFormatError(f"{self.path(modality, index)}: {modality} has NaN or inf; expected finite values")
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))

    def load(self, index: int, modalities: Iterable[str] | None = None) -> DenseSample:
        """The image of ``index`` and its maps of ``modalities`` (default: all of this folder's) as tensors."""
        wanted = self.modalities if modalities is None else tuple(modalities)
        unknown = [m for m in wanted if m not in self.modalities]
        if unknown:
            raise ValueError(f"{self.root}: modality(ies) {unknown} not opened; opened: {list(self.modalities)}")
        return DenseSample(
            self._image(index),
            label=self._label(index) if "label" in wanted else None,
            depth=self._finite_maps("depth", index) if "depth" in wanted else None,
            normals=self._finite_maps("normal", index) if "normal" in wanted else None,
        )

    def __repr__(self) -> str:
        return f"DenseFolder({str(self.root)!r}, modalities={self.modalities}, images={len(self.indices)})"
