"""Build the Fashion-MNIST subset shipped inside taskbalance (the sources of the embedded MultiFashion problem).

Reads the four idx gzip files of Debian's ``dataset-fashion-mnist`` package (Xiao, Rasul & Vollgraf 2017,
"Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747; MIT
licence, Zalando SE), takes a seeded, class-balanced subset (by default 1,000 training and 200 test images per
class: 10,000 + 2,000 images of 28 × 28 uint8) and writes:

* ``src/taskbalance/data/embedded/fashion_mnist_subset.npz`` — arrays ``train_images`` [N, 28, 28] uint8,
  ``train_labels`` [N] uint8, ``train_source_index`` [N] int32 (row in the original training file), and the same
  three for ``test``. The file is an ``np.savez_compressed`` archive (read with ``np.load``) written with fixed
  zip timestamps, so that rebuilding with the same inputs gives a byte-identical file (same sha256).
* ``src/taskbalance/data/embedded/provenance.json`` — source package and version, sha256 of every source file,
  seed, counts, and the sha256 of the shipped file (the loader verifies it).

The idx format (LeCun et al., MNIST): a big-endian header — two zero bytes, a type code (0x08 = uint8), the number
of dimensions d, then d big-endian uint32 sizes — followed by the data in C order.

Example:
    python scripts/build_multifashion.py                     # rebuild in place (same bytes as shipped)
    python scripts/build_multifashion.py --out /tmp/embedded  # build elsewhere to compare
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np

SOURCE_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCE_PACKAGE = "dataset-fashion-mnist"
SOURCE_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "taskbalance" / "data" / "embedded"
SHIPPED_NAME = "fashion_mnist_subset.npz"
PROVENANCE_NAME = "provenance.json"
NUM_CLASSES = 10
IDX_UINT8 = 0x08
# A constant zip timestamp (the earliest zip can store) makes the archive reproducible byte for byte.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array stored in a gzip-compressed idx file; errors name the file and what was wrong."""
    raw = gzip.decompress(path.read_bytes())
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an idx file (expected two zero bytes at the start, got {raw[:2].hex()!r})")
    type_code, ndim = raw[2], raw[3]
    if type_code != IDX_UINT8:
        raise ValueError(f"{path}: expected idx type 0x08 (uint8), got 0x{type_code:02x}")
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_end + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes in all), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: ``per_class`` rows of every class, drawn uniformly without replacement."""
    chosen = []
    for label in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise ValueError(f"class {label} has only {len(rows)} images, {per_class} requested")
        chosen.append(rng.choice(rows, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def write_reproducible_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What ``np.savez_compressed`` writes (one deflated ``.npy`` member per array), with fixed timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            archive.writestr(member, buffer.getvalue(), compresslevel=9)


def package_version(package: str) -> str:
    """The installed Debian package version, e.g. ``0.0~git20200523.55506a9-1``."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def build(source_dir: Path, out: Path, seed: int, train_per_class: int, test_per_class: int) -> dict[str, object]:
    """Write the subset and its provenance into ``out``; returns the provenance record."""
    missing = [name for name in SOURCE_FILES.values() if not (source_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source_dir}: missing {missing}; install the Debian package {SOURCE_PACKAGE} (apt-get install "
            f"{SOURCE_PACKAGE}) or pass --source-dir"
        )
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images = read_idx(source_dir / SOURCE_FILES[f"{split}_images"])
        labels = read_idx(source_dir / SOURCE_FILES[f"{split}_labels"])
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(f"{split}: expected images [N, 28, 28] and labels [N], got {images.shape}, {labels.shape}")
        rows = balanced_subset(labels, per_class, rng)
        arrays[f"{split}_images"] = images[rows]
        arrays[f"{split}_labels"] = labels[rows]
        arrays[f"{split}_source_index"] = rows.astype(np.int32)
        counts[split] = len(rows)
    out.mkdir(parents=True, exist_ok=True)
    shipped = out / SHIPPED_NAME
    write_reproducible_npz(shipped, arrays)
    provenance: dict[str, object] = {
        "description": "Class-balanced seeded subset of Fashion-MNIST, the source images of taskbalance's embedded "
        "MultiFashion problem (composed at load time by taskbalance.data.multifashion).",
        "source": {
            "dataset": "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747)",
            "upstream": "https://github.com/zalandoresearch/fashion-mnist",
            "licence": "MIT (Expat), Copyright 2017 Zalando SE; see NOTICE-fashion-mnist.txt",
            "debian_package": SOURCE_PACKAGE,
            "debian_package_version": package_version(SOURCE_PACKAGE),
            "directory": str(source_dir),
            "files": {
                name: {"file": file, "sha256": sha256_of(source_dir / file)} for name, file in SOURCE_FILES.items()
            },
        },
        "selection": {
            "method": "per class, rows drawn uniformly without replacement with numpy.random.default_rng(seed) "
            "(train file first, then test file), sorted by original row",
            "seed": seed,
            "per_class": {"train": train_per_class, "test": test_per_class},
            "counts": counts,
        },
        "shipped_file": {
            "name": SHIPPED_NAME,
            "sha256": sha256_of(shipped),
            "bytes": shipped.stat().st_size,
            "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()},
        },
        "build_script": "scripts/build_multifashion.py",
    }
    (out / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", type=Path, default=SOURCE_DIR, help="folder with the four idx .gz files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset selection")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args()
    provenance = build(args.source_dir, args.out, args.seed, args.train_per_class, args.test_per_class)
    shipped = provenance["shipped_file"]
    assert isinstance(shipped, dict)
    print(f"wrote {args.out / SHIPPED_NAME}: {shipped['bytes']} bytes, sha256 {shipped['sha256']}")


if __name__ == "__main__":
    main()
