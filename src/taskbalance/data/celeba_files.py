"""Reading and checking CelebA's official annotation files (Liu et al. 2015, "Deep Learning Face Attributes").

* ``list_attr_celeba.txt``: line 1 the number of images N, line 2 the attribute names (40 in the official file),
  then N lines ``<file name> v_1 … v_A`` with v ∈ {−1, 1}, mapped to 0/1 (1 = the attribute is present).
* ``list_eval_partition.txt``: N lines ``<file name> p`` with p ∈ {0, 1, 2} = train / validation / test
  (162,770 / 19,867 / 19,962 images in the official release).
* ``img_align_celeba/``: the aligned and cropped JPEGs (178 × 218), one per listed file name.

Every check names the file (and line) and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskbalance.data.errors import DatasetFormatError

ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_FOLDER = "img_align_celeba"
PARTITIONS = {"train": 0, "val": 1, "test": 2}
_ATTRIBUTE_VALUES = frozenset({"-1", "1"})

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
"""The 40 attribute names of the official ``list_attr_celeba.txt``, in file order."""


@dataclass(frozen=True)
class CelebAAnnotations:
    """CelebA's attributes and partition, one row per image in the attribute file's order.

    Attributes:
        attribute_names: the header's attribute names.
        file_names: image file names (e.g. ``000001.jpg``).
        attributes: ``[N, A]`` uint8, 1 where the file says 1 and 0 where it says −1.
        partition: ``[N]`` int8, 0/1/2 = train/val/test.
    """

    attribute_names: tuple[str, ...]
    file_names: tuple[str, ...]
    attributes: np.ndarray
    partition: np.ndarray

    def rows(self, split: str) -> np.ndarray:
        """Row numbers of the images of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in PARTITIONS:
            raise ValueError(f"unknown CelebA split {split!r}; known: {list(PARTITIONS)}")
        return np.flatnonzero(self.partition == PARTITIONS[split])


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing; expected CelebA's {what}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: not a readable text file ({error}); expected CelebA's {what}") from None


_ATTRIBUTE_FILE_FORMAT = "attribute file (count line, attribute names line, then '<image> ±1 …' lines)"


def _attribute_header(path: Path, lines: list[str]) -> tuple[int, tuple[str, ...]]:
    """(image count, attribute names) from the first two lines of ``list_attr_celeba.txt``."""
    if len(lines) < 2:
        raise DatasetFormatError(f"{path}: {len(lines)} line(s); expected a count line and an attribute names line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DatasetFormatError(f"{path}:1: {lines[0]!r}; expected the number of images") from None
    names = tuple(lines[1].split())
    if not names or len(set(names)) != len(names):
        raise DatasetFormatError(f"{path}:2: attribute names {list(names)}; expected distinct, non-empty names")
    return count, names


def read_attribute_names(root: str | Path) -> tuple[str, ...]:
    """The attribute names of ``root/list_attr_celeba.txt``, reading only its first two lines."""
    path = Path(root) / ATTRIBUTE_FILE
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing; expected CelebA's {_ATTRIBUTE_FILE_FORMAT}")
    try:
        with path.open(encoding="utf-8") as handle:
            lines = [handle.readline().rstrip("\n") for _ in range(2)]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: not a readable text file ({error}); expected CelebA's "
                                 f"{_ATTRIBUTE_FILE_FORMAT}") from None
    return _attribute_header(path, [line for line in lines if line])[1]


def read_attributes(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(attribute names, file names, ``[N, A]`` uint8 0/1 attributes) from ``list_attr_celeba.txt``."""
    lines = _read_lines(path, _ATTRIBUTE_FILE_FORMAT)
    count, names = _attribute_header(path, lines[:2])
    width = len(names) + 1
    file_names: list[str] = []
    present: list[list[bool]] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width:
            raise DatasetFormatError(
                f"{path}:{number}: {len(fields)} fields; expected an image name and {len(names)} attribute values"
            )
        values = fields[1:]
        if not _ATTRIBUTE_VALUES.issuperset(values):
            column = next(i for i, value in enumerate(values) if value not in _ATTRIBUTE_VALUES)
            raise DatasetFormatError(
                f"{path}:{number}: attribute {names[column]!r} of {fields[0]} is {values[column]!r}; expected -1 or 1"
            )
        file_names.append(fields[0])
        present.append([value == "1" for value in values])
    if len(file_names) != count:
        raise DatasetFormatError(f"{path}: {len(file_names)} image lines; expected {count} (the count on line 1)")
    if len(set(file_names)) != len(file_names):
        raise DatasetFormatError(f"{path}: an image is listed twice; expected each image once")
    return names, tuple(file_names), np.array(present, dtype=np.uint8).reshape(count, len(names))


def read_partition(path: Path, file_names: tuple[str, ...], attribute_path: Path) -> np.ndarray:
    """``[N]`` int8 partition (0/1/2) of ``file_names`` from ``list_eval_partition.txt``."""
    lines = _read_lines(path, "partition file ('<image> 0|1|2' lines)")
    partition_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetFormatError(f"{path}:{number}: {line!r}; expected '<image name> <0|1|2>'")
        name, value = fields
        if value not in ("0", "1", "2"):
            raise DatasetFormatError(
                f"{path}:{number}: partition {value!r} of {name}; expected 0 (train), 1 (val) or 2 (test)"
            )
        if name in partition_of:
            raise DatasetFormatError(f"{path}:{number}: {name} is listed twice; expected each image once")
        partition_of[name] = int(value)
    missing = [name for name in file_names if name not in partition_of]
    if missing:
        raise DatasetFormatError(
            f"{path}: no partition for {missing[0]} ({len(missing)} image(s) of {attribute_path} missing)"
        )
    if len(partition_of) != len(file_names):
        listed = set(file_names)
        extra = next(name for name in partition_of if name not in listed)
        raise DatasetFormatError(f"{path}: {extra} has a partition but no attributes in {attribute_path}")
    return np.array([partition_of[name] for name in file_names], dtype=np.int8)


def check_images(folder: Path, file_names: tuple[str, ...]) -> None:
    """Every listed image exists in ``folder`` (one directory listing, not one stat per file)."""
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder}: missing; expected the folder of CelebA's aligned images (000001.jpg, …)")
    present = set(os.listdir(folder))
    missing = [name for name in file_names if name not in present]
    if missing:
        raise DatasetFormatError(f"{folder / missing[0]}: missing ({len(missing)} listed image(s) missing in {folder})")


def read_annotations(root: str | Path) -> CelebAAnnotations:
    """Read and check CelebA's attribute and partition files and the image folder under ``root``.

    Example (needs the files on disk, so it is not run as a doctest)::

        annotations = read_annotations("data/celeba")
        len(annotations.attribute_names), len(annotations.rows("train"))
        # → (40, 162770)
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(
            f"{root}: missing dataset folder; expected {ATTRIBUTE_FILE}, {PARTITION_FILE} and {IMAGE_FOLDER}/"
        )
    attribute_path = root / ATTRIBUTE_FILE
    names, file_names, attributes = read_attributes(attribute_path)
    partition = read_partition(root / PARTITION_FILE, file_names, attribute_path)
    check_images(root / IMAGE_FOLDER, file_names)
    return CelebAAnnotations(names, file_names, attributes, partition)
