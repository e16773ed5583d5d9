"""MultiFashion, the embedded default problem: two Fashion-MNIST items on one 36 × 36 canvas, three tasks.

The problem follows MultiFashion (Lin et al. 2019, "Pareto Multi-Task Learning", NeurIPS), itself built like
MultiMNIST (Sabour et al. 2017; Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"): one
item is placed at the top-left corner of a 36 × 36 canvas, another at the bottom-right corner (offset 8 pixels down
and right), so the two 28 × 28 items overlap in the central 20 × 20 square. Unlike the original, one of the two
items lies on top (a seeded fair coin per sample) and occludes the other, which gives a third, dense task of a
different loss type and scale:

* ``left`` — class of the top-left item (10 classes, cross-entropy; metric accuracy ↑);
* ``right`` — class of the bottom-right item (10 classes, cross-entropy; accuracy ↑);
* ``depth`` — a 9 × 9 depth-like map of the visible surface (L1; MAE ↓). Per canvas pixel the depth is
  ``0`` where the upper item is visible, ``0.5`` where the lower item is visible, ``1`` on empty background; the
  target is its mean over each 4 × 4 block: ``d[i, j] = (1/16) Σ_{4i ≤ y < 4i+4, 4j ≤ x < 4j+4} depth(y, x)``.
  Outside the overlap the map says where an item is and whether that item is the upper one, inside it which item
  occludes which — an image-level cue (whose silhouette is intact) the network must infer.

Composition, per pixel with item values in 0…255: an item *covers* a pixel when its value is ≥ 16 (Fashion-MNIST
backgrounds hold faint noise below that). The canvas shows the upper item where it covers the pixel, elsewhere the
brighter of the two (faint uncovered pixels of the upper item are treated as transparent). Inputs are float32
``[1, 36, 36]`` in [0, 1] (value / 255); targets ``left``/``right`` are int64 0-dim tensors, ``depth`` float32
``[1, 9, 9]`` in [0, 1].

Sources and splits. The package ships 10,000 training and 2,000 test images of Fashion-MNIST (Xiao et al. 2017,
MIT licence; class-balanced, seeded; see ``embedded/provenance.json`` and ``scripts/build_multifashion.py``). The
loader checks the shipped file's sha256 against the provenance record, then — seeded by ``seed`` — carves 1,000 of
the training sources as the validation pool and pairs sources *within* each pool (train: 9,000 sources, val: 1,000,
test: the 2,000 test images), so no source image appears in two splits. Pairs use every source of a pool about
equally often as left and as right item and never pair an image with itself. Each split's pairs come from their
own random stream, so changing ``num_train`` leaves the validation and test samples unchanged. All samples are
composed once at load time into tensors.

Defaults: 10,000 training, 2,000 validation, 2,000 test samples (the default benchmark's size).

Example:
    >>> data = multifashion(num_train=64, num_val=16, num_test=16)
    >>> image, targets = data.train[0]
    >>> tuple(image.shape), sorted(targets), tuple(targets["depth"].shape)
    ((1, 36, 36), ['depth', 'left', 'right'], (1, 9, 9))
    >>> data.tasks["left"], data.tasks["depth"].head
    (Classification(name='left', num_classes=10), HeadSpec(out_channels=1, dense=True, size=(9, 9)))
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from taskbalance.data.base import MultiTaskData
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.mtan_layout import choose_tasks
from taskbalance.data.registry import DATASET_TASKS, DATASETS
from taskbalance.tasks import Classification, Regression
from taskbalance.tasks.base import Task

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11; the annotations are strings at run time.
    from importlib.resources.abc import Traversable

SOURCE_FILE = "fashion_mnist_subset.npz"
PROVENANCE_FILE = "provenance.json"
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CANVAS = 36
DEPTH_BLOCK = 4
DEPTH_SIZE = CANVAS // DEPTH_BLOCK
COVER_THRESHOLD = 16
DEPTH_UPPER, DEPTH_LOWER, DEPTH_BACKGROUND = 0.0, 0.5, 1.0
VAL_SOURCES = 1000
TASK_NAMES = ("left", "right", "depth")
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
_SOURCE_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def embedded_file(name: str) -> Traversable:
    """A file of the package's ``data/embedded`` folder (works for wheels, editable and zipped installs)."""
    return files("taskbalance.data").joinpath("embedded", name)


def load_sources(
    source: Path | Traversable | None = None, provenance: Path | Traversable | None = None
) -> dict[str, np.ndarray]:
    """The shipped source images and labels, after checking the file's sha256 against the provenance record.

    Args:
        source: the ``.npz`` file (default: the one shipped in the package).
        provenance: the JSON record with ``shipped_file.sha256`` (default: the shipped ``provenance.json``).

    Returns:
        ``train_images`` [N, 28, 28] uint8, ``train_labels`` [N] uint8, ``test_images``, ``test_labels``.

    Raises:
        DatasetFormatError: a file is missing, the checksum does not match (the message names the file and both
            hashes) or an array is missing or malformed.
    """
    source = embedded_file(SOURCE_FILE) if source is None else source
    provenance = embedded_file(PROVENANCE_FILE) if provenance is None else provenance
    try:
        record = json.loads(provenance.read_text(encoding="utf-8"))
        expected = record["shipped_file"]["sha256"]
    except FileNotFoundError:
        raise DatasetFormatError(f"{provenance}: missing; expected the provenance record of {SOURCE_FILE}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetFormatError(f"{provenance}: expected JSON with shipped_file.sha256 ({error!r})") from None
    try:
        payload = source.read_bytes()
    except FileNotFoundError:
        raise DatasetFormatError(f"{source}: missing; expected the embedded Fashion-MNIST subset") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise DatasetFormatError(
            f"{source}: sha256 {actual} does not match {expected} recorded in {provenance}; the embedded file is "
            "corrupted or was changed (reinstall taskbalance or rebuild it with scripts/build_multifashion.py)"
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        missing = [name for name in _SOURCE_ARRAYS if name not in archive.files]
        if missing:
            raise DatasetFormatError(f"{source}: missing arrays {missing}; has {archive.files}")
        arrays = {name: archive[name] for name in _SOURCE_ARRAYS}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != images.shape[:1]:
            raise DatasetFormatError(
                f"{source}: expected {split}_images [N, H, W] uint8 and {split}_labels [N], got "
                f"{images.shape} {images.dtype} and {labels.shape}"
            )
    return arrays


def compose(left: np.ndarray, right: np.ndarray, left_on_top: np.ndarray, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlay item pairs at opposite corners of a square canvas, with occlusion (module docstring).

    Args:
        left: [N, h, w] uint8 items placed with their top-left corner at (0, 0).
        right: [N, h, w] uint8 items placed with their bottom-right corner at the canvas's.
        left_on_top: [N] bool, whether the left item is the upper one.
        canvas: side S of the square canvas (h, w ≤ S).

    Returns:
        images [N, S, S] float32 in [0, 1] and the full-resolution depth [N, S, S] float32 (0 upper item,
        0.5 lower item, 1 background).

    Example:
        >>> item = np.full((1, 2, 2), 200, dtype=np.uint8)
        >>> images, depth = compose(item, item // 2, np.array([True]), canvas=3)
        >>> (images[0] * 255).round().astype(int).tolist(), depth[0].tolist()
        ([[200, 200, 0], [200, 200, 100], [0, 100, 100]], [[0.0, 0.0, 1.0], [0.0, 0.0, 0.5], [1.0, 0.5, 0.5]])
    """
    if left.shape != right.shape or left.ndim != 3 or left.shape[0] != len(left_on_top):
        raise ValueError(
            f"compose: expected left and right [N, h, w] and left_on_top [N], got {left.shape}, {right.shape}, "
            f"{np.shape(left_on_top)}"
        )
    count, height, width = left.shape
    if height > canvas or width > canvas:
        raise ValueError(f"compose: items of {height}×{width} do not fit a {canvas}×{canvas} canvas")
    left_canvas = np.zeros((count, canvas, canvas), dtype=np.uint8)
    right_canvas = np.zeros_like(left_canvas)
    left_canvas[:, :height, :width] = left
    right_canvas[:, canvas - height :, canvas - width :] = right
    on_top = np.asarray(left_on_top, dtype=bool)[:, None, None]
    upper = np.where(on_top, left_canvas, right_canvas)
    lower = np.where(on_top, right_canvas, left_canvas)
    upper_covers = upper >= COVER_THRESHOLD
    lower_covers = lower >= COVER_THRESHOLD
    images = np.where(upper_covers, upper, np.maximum(upper, lower)).astype(np.float32) / 255.0
    # A lookup by (upper covers, lower covers) code is ~30× faster than nested float np.where on 14k canvases.
    depth_of_code = np.array([DEPTH_BACKGROUND, DEPTH_LOWER, DEPTH_UPPER, DEPTH_UPPER], dtype=np.float32)
    depth = depth_of_code[upper_covers.view(np.uint8) * 2 + lower_covers.view(np.uint8)]
    return images, depth


def block_mean(maps: np.ndarray, block: int) -> np.ndarray:
    """Mean over non-overlapping ``block × block`` squares: [N, S, S] → [N, S/block, S/block].

    Example:
        >>> block_mean(np.arange(16, dtype=np.float32).reshape(1, 4, 4), 2).tolist()
        [[[2.5, 4.5], [10.5, 12.5]]]
    """
    count, height, width = maps.shape
    if height % block or width % block:
        raise ValueError(f"block_mean: a {height}×{width} map does not split into {block}×{block} blocks")
    return maps.reshape(count, height // block, block, width // block, block).mean(axis=(2, 4), dtype=np.float32)


def pair_sources(pool_size: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs of distinct positions in a pool; each position is used about equally often on each side.

    Both sides walk through fresh random permutations of the pool; a pair that would repeat one image takes the
    next image of the pool as its right item instead.
    """
    if pool_size < 2:
        raise ValueError(f"pairing needs at least 2 source images, got {pool_size}")
    rounds = -(-count // pool_size)
    left = np.concatenate([rng.permutation(pool_size) for _ in range(rounds)])[:count]
    right = np.concatenate([rng.permutation(pool_size) for _ in range(rounds)])[:count]
    clash = left == right
    right[clash] = (right[clash] + 1) % pool_size
    return left, right


class MultiFashionSplit(Dataset[tuple[Tensor, dict[str, Tensor]]]):
    """One split of composed samples held as tensors: item ``i`` is ``(images[i], {task: targets[task][i]})``.

    Attributes:
        images: [N, 1, S, S] float32 inputs.
        targets: task name → [N, ...] targets.
        left_source, right_source: [N] row of each item in the shipped ``{source_split}_images`` array.
        left_on_top: [N] bool, which item is the upper one.
        source_split: ``"train"`` or ``"test"``, the shipped array the rows refer to.
    """

    def __init__(
        self,
        images: Tensor,
        targets: dict[str, Tensor],
        left_source: np.ndarray,
        right_source: np.ndarray,
        left_on_top: np.ndarray,
        source_split: str,
    ) -> None:
        wrong = {name: tuple(t.shape) for name, t in targets.items() if t.shape[0] != images.shape[0]}
        if wrong:
            raise ValueError(f"targets {wrong} do not have {images.shape[0]} samples like the images")
        self.images = images
        self.targets = targets
        self.left_source = left_source
        self.right_source = right_source
        self.left_on_top = left_on_top
        self.source_split = source_split

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.images[index], {name: target[index] for name, target in self.targets.items()}

    def tensors(self) -> tuple[Tensor, dict[str, Tensor]]:
        """Every sample at once (:class:`~taskbalance.data.base.TensorSplit`), for batches indexed on the device."""
        return self.images, dict(self.targets)


def _build_split(
    images: np.ndarray, labels: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator, source_split: str
) -> MultiFashionSplit:
    left_pos, right_pos = pair_sources(len(pool), count, rng)
    left_on_top = rng.random(count) < 0.5
    left_rows, right_rows = pool[left_pos], pool[right_pos]
    composed, depth = compose(images[left_rows], images[right_rows], left_on_top, CANVAS)
    targets = {
        "left": torch.from_numpy(labels[left_rows].astype(np.int64)),
        "right": torch.from_numpy(labels[right_rows].astype(np.int64)),
        "depth": torch.from_numpy(block_mean(depth, DEPTH_BLOCK)).unsqueeze(1),
    }
    return MultiFashionSplit(
        torch.from_numpy(composed).unsqueeze(1), targets, left_rows, right_rows, left_on_top, source_split
    )


def _check_count(option: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"dataset 'multifashion': {option} must be an integer ≥ {minimum}, got {value!r}")


def multifashion_tasks() -> dict[str, Task]:
    """The three tasks in canonical order: ``left``, ``right`` (10-way CE) and ``depth`` (dense 9 × 9 L1)."""
    return {
        "left": Classification("left", num_classes=len(CLASS_NAMES)),
        "right": Classification("right", num_classes=len(CLASS_NAMES)),
        "depth": Regression("depth", out_channels=1, dense=True, size=(DEPTH_SIZE, DEPTH_SIZE), loss="l1"),
    }


@DATASET_TASKS.register("multifashion")
def multifashion_task_list(
    *, num_train: int, num_val: int, num_test: int, seed: int, tasks: Sequence[str] | None
) -> dict[str, Task]:
    """The tasks :func:`multifashion` gives for these options, with the options checked; nothing is loaded.

    Example:
        >>> list(multifashion_task_list(num_train=8, num_val=4, num_test=4, seed=0, tasks=["depth", "left"]))
        ['depth', 'left']
    """
    for option, value, minimum in (("num_train", num_train, 1), ("num_val", num_val, 1), ("num_test", num_test, 1),
                                   ("seed", seed, 0)):
        _check_count(option, value, minimum)
    all_tasks = multifashion_tasks()
    return {name: all_tasks[name] for name in choose_tasks("multifashion", TASK_NAMES, tasks)}


@DATASETS.register("multifashion")
def multifashion(
    *,
    num_train: int = 10_000,
    num_val: int = 2_000,
    num_test: int = 2_000,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
) -> MultiTaskData:
    """The embedded MultiFashion problem, composed from the shipped Fashion-MNIST subset (module docstring).

    Args:
        num_train, num_val, num_test: samples per split (pairs of source images; sources may repeat within a split).
        seed: seeds the validation carve, the pairing and which item lies on top (not the training itself).
        tasks: task names to use, a subset of ``("left", "right", "depth")`` (default all three).

    Raises:
        DatasetFormatError: the shipped file is missing or its sha256 does not match ``provenance.json``.
        ValueError: a count or the seed is not a valid integer; KeyError: an unknown task name.
    """
    chosen = multifashion_task_list(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, tasks=tasks)
    counts = {"train": num_train, "val": num_val, "test": num_test}
    sources = load_sources()
    carve = np.random.default_rng([seed, len(_SPLIT_STREAMS)]).permutation(len(sources["train_labels"]))
    pools = {
        "train": ("train", np.sort(carve[VAL_SOURCES:])),
        "val": ("train", np.sort(carve[:VAL_SOURCES])),
        "test": ("test", np.arange(len(sources["test_labels"]))),
    }
    splits = {}
    for split, (source_split, pool) in pools.items():
        rng = np.random.default_rng([seed, _SPLIT_STREAMS[split]])
        built = _build_split(
            sources[f"{source_split}_images"], sources[f"{source_split}_labels"], pool, counts[split], rng, source_split
        )
        built.targets = {name: built.targets[name] for name in chosen}
        splits[split] = built
    return MultiTaskData(
        name="multifashion",
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        tasks=chosen,
        input_shape=(1, CANVAS, CANVAS),
    )
