"""Tiny datasets written at test time in the exact on-disk layouts of NYUv2/Cityscapes (MTAN) and CelebA.

All pixels are generated here from seeded random numbers; nothing third-party is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from taskbalance.data.celeba_files import CELEBA_ATTRIBUTES

SIZE = (12, 16)


@dataclass
class DenseArrays:
    """The arrays written for one split, per modality, indexed like the files."""

    image: dict[int, np.ndarray] = field(default_factory=dict)
    label: dict[int, np.ndarray] = field(default_factory=dict)
    depth: dict[int, np.ndarray] = field(default_factory=dict)
    normal: dict[int, np.ndarray] = field(default_factory=dict)


def random_unit_normals(rng: np.random.Generator, size: tuple[int, int], invalid_fraction: float = 0.2) -> np.ndarray:
    normals = rng.normal(size=(*size, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[rng.random(size) < invalid_fraction] = 0.0
    return normals.astype(np.float32)


def write_dense_split(
    split_root: Path,
    count: int,
    *,
    size: tuple[int, int] = SIZE,
    modalities: tuple[str, ...] = ("label", "depth", "normal"),
    num_classes: int = 13,
    seed: int = 0,
    label_folder: str = "label",
    depth_channel: bool = True,
) -> DenseArrays:
    """Write ``count`` images (indices 0 … count − 1) with the given modalities into ``split_root``."""
    rng = np.random.default_rng(seed)
    arrays = DenseArrays()
    folders = {"image": "image", "label": label_folder, "depth": "depth", "normal": "normal"}
    for modality in ("image", *modalities):
        (split_root / folders[modality]).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        arrays.image[index] = rng.random((*size, 3), dtype=np.float32)
        if "label" in modalities:
            arrays.label[index] = rng.integers(-1, num_classes, size=size).astype(np.float32)  # MTAN stores floats
        if "depth" in modalities:
            depth = rng.uniform(0.5, 10.0, size=size).astype(np.float32)
            depth[rng.random(size) < 0.2] = 0.0
            arrays.depth[index] = depth[:, :, None] if depth_channel else depth
        if "normal" in modalities:
            arrays.normal[index] = random_unit_normals(rng, size)
        for modality in ("image", *modalities):
            np.save(split_root / folders[modality] / f"{index}.npy", getattr(arrays, modality)[index])
    return arrays


def write_nyuv2(
    root: Path, train: int = 10, test: int = 4, *, size: tuple[int, int] = SIZE, depth_channel: bool = True
) -> tuple[DenseArrays, DenseArrays]:
    """A NYUv2-layout folder: ``root/train`` and ``root/val`` (the test split)."""
    return (
        write_dense_split(root / "train", train, size=size, seed=1, depth_channel=depth_channel),
        write_dense_split(root / "val", test, size=size, seed=2, depth_channel=depth_channel),
    )


def write_cityscapes(
    root: Path, train: int = 10, test: int = 3, *, size: tuple[int, int] = SIZE, label_folder: str = "label"
) -> tuple[DenseArrays, DenseArrays]:
    """A Cityscapes-layout folder (7 classes, no normals)."""
    modalities = ("label", "depth")
    return (
        write_dense_split(
            root / "train", train, size=size, modalities=modalities, num_classes=7, seed=3, label_folder=label_folder
        ),
        write_dense_split(
            root / "val", test, size=size, modalities=modalities, num_classes=7, seed=4, label_folder=label_folder
        ),
    )


@dataclass
class CelebAFiles:
    """What :func:`write_celeba` wrote: names, ±1 attributes, partitions and the flat colour of each image."""

    file_names: list[str]
    signs: np.ndarray
    partition: list[int]
    colours: list[tuple[int, ...]]


def write_celeba(root: Path, partition: tuple[int, ...] = (0, 0, 0, 1, 1, 2, 2), seed: int = 0) -> CelebAFiles:
    """A CelebA folder with one flat-colour 16 × 24 JPEG per entry of ``partition`` and random ±1 attributes."""
    rng = np.random.default_rng(seed)
    count = len(partition)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    signs = rng.choice(np.array([-1, 1]), size=(count, len(CELEBA_ATTRIBUTES)))
    colours = [tuple(int(c) for c in rng.integers(0, 256, size=3)) for _ in range(count)]
    root.mkdir(parents=True, exist_ok=True)
    # The official file pads with two spaces before a positive value and ends the header with a space.
    rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, signs, strict=True)]
    (root / "list_attr_celeba.txt").write_text("\n".join([str(count), " ".join(CELEBA_ATTRIBUTES) + " ", *rows]) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{name} {p}\n" for name, p in zip(names, partition, strict=True))
    )
    (root / "img_align_celeba").mkdir(exist_ok=True)
    for name, colour in zip(names, colours, strict=True):
        Image.new("RGB", (16, 24), colour).save(root / "img_align_celeba" / name, quality=95)
    return CelebAFiles(names, signs, list(partition), colours)
