"""Scale-crop and flip maths against values worked out by hand, and the seeding of the random draws."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from taskbalance.data.dense_sample import DenseSample
from taskbalance.data.transforms import (
    DenseAugmentation,
    augmentation_generator,
    crop_size,
    horizontal_flip,
    nearest_indices,
    scale_crop,
)


def _sample(height: int = 6, width: int = 6) -> DenseSample:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, height, width, generator=generator)
    label = torch.arange(height * width).reshape(height, width) % 5 - 1  # includes −1 (ignore)
    depth = torch.full((1, height, width), 3.0)
    depth[0, 1, 2] = 0.0  # an invalid pixel
    normals = torch.zeros(3, height, width)
    normals[:, :, :] = torch.tensor([0.6, 0.0, 0.8])[:, None, None]
    normals[:, 2, 3] = 0.0  # an invalid normal
    return DenseSample(image, label, depth, normals)


def test_crop_size_is_floor_of_size_over_scale() -> None:
    assert crop_size((288, 384), 1.2) == (240, 320)
    assert crop_size((288, 384), 1.5) == (192, 256)
    assert crop_size((12, 16), 1.5) == (8, 10)  # 16/1.5 = 10.67
    assert crop_size((128, 256), 1.0) == (128, 256)
    with pytest.raises(ValueError, match="≥ 1"):
        crop_size((12, 16), 0.5)


def test_nearest_neighbour_aligns_pixel_centres() -> None:
    # floor((d + ½)·4/6) for d = 0..5: 0.33, 1.0, 1.67, 2.33, 3.0, 3.67
    assert nearest_indices(4, 6).tolist() == [0, 1, 1, 2, 3, 3]
    # floor((d + ½)·2/4): 0.25, 0.75, 1.25, 1.75
    assert nearest_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert nearest_indices(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_scale_crop_maps_labels_depth_and_normals_by_nearest_neighbour() -> None:
    sample = _sample()
    out = scale_crop(sample, 1.5, top=1, left=2)  # window rows 1..4, cols 2..5, resized 4 → 6
    source = [0, 1, 1, 2, 3, 3]
    for r in range(6):
        for c in range(6):
            row, col = 1 + source[r], 2 + source[c]
            assert out.label[r, c] == sample.label[row, col]
            assert out.depth[0, r, c] == sample.depth[0, row, col] / 1.5
            assert torch.allclose(out.normals[:, r, c], sample.normals[:, row, col])
    assert out.label.dtype == torch.int64 and (out.label == -1).any()
    # The invalid depth pixel (1, 2) is the source of output rows {0} × cols {0}: it stays 0, others are 3/1.5 = 2.
    assert out.depth[0, 0, 0] == 0.0 and int((out.depth == 0).sum()) == 1
    assert torch.allclose(out.depth[out.depth != 0], torch.tensor(2.0))
    # The invalid normal (2, 3) is window pixel (1, 1), the source of output rows {1, 2} × cols {1, 2}.
    invalid = out.normals.norm(dim=0) == 0
    assert invalid.nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    assert torch.allclose(out.normals.norm(dim=0)[~invalid], torch.tensor(1.0))
    assert out.image.shape == sample.image.shape and out.image.dtype == torch.float32


def test_scale_crop_multiplies_inverse_depth_by_the_scale() -> None:
    sample = _sample()
    out = scale_crop(sample, 1.5, top=0, left=0, inverse_depth=True)
    assert torch.allclose(out.depth[out.depth != 0], torch.tensor(4.5))  # 3 × 1.5


def test_scale_crop_resizes_the_image_bilinearly() -> None:
    # A 2 × 2 window [[0, 1], [0, 1]] resized to 4 × 4 with half-pixel centres samples x = −0.25, 0.25, 0.75, 1.25,
    # clamped at the borders: 0, 0.25, 0.75, 1 along every row.
    image = torch.zeros(3, 4, 4)
    image[:, :, 3] = 1.0
    out = scale_crop(DenseSample(image), 2.0, top=1, left=2)
    assert torch.allclose(out.image[0], torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(4, 4))


def test_scale_one_at_the_origin_is_the_identity() -> None:
    sample = _sample()
    out = scale_crop(sample, 1.0, top=0, left=0)
    for name in ("image", "label", "depth", "normals"):
        assert torch.equal(getattr(out, name), getattr(sample, name)), name


def test_scale_crop_refuses_a_window_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match=r"4×4 at \(top=3, left=0\)"):
        scale_crop(_sample(), 1.5, top=3, left=0)


def test_flip_mirrors_every_map_and_negates_the_normals_x() -> None:
    sample = _sample()
    out = horizontal_flip(sample)
    for c in range(6):
        assert torch.equal(out.image[:, :, c], sample.image[:, :, 5 - c])
        assert torch.equal(out.label[:, c], sample.label[:, 5 - c])
        assert torch.equal(out.depth[..., c], sample.depth[..., 5 - c])
    assert torch.equal(out.normals[0, :, 0], -sample.normals[0, :, 5])
    assert torch.equal(out.normals[1:, :, 0], sample.normals[1:, :, 5])
    # The invalid normal at (2, 3) moves to (2, 2) and stays a +0 zero vector.
    assert out.normals[:, 2, 2].tolist() == [0.0, 0.0, 0.0]
    assert not torch.signbit(out.normals[:, 2, 2]).any()
    twice = horizontal_flip(out)
    assert all(torch.equal(getattr(twice, n), getattr(sample, n)) for n in ("image", "label", "depth", "normals"))


def test_augmentation_is_reproducible_from_its_generator() -> None:
    augment = DenseAugmentation()
    first = augment(_sample(12, 16), torch.Generator().manual_seed(3))
    second = augment(_sample(12, 16), torch.Generator().manual_seed(3))
    assert all(torch.equal(getattr(first, n), getattr(second, n)) for n in ("image", "label", "depth", "normals"))


def test_augmentation_draws_every_scale_and_flips_about_half_the_time() -> None:
    augment = DenseAugmentation()
    generator = torch.Generator().manual_seed(0)
    sample = DenseSample(torch.zeros(3, 12, 16), depth=torch.full((1, 12, 16), 6.0))
    sample.normals = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 12, 16).clone()
    depths, flips = [], 0
    for _ in range(300):
        out = augment(sample, generator)
        assert out.depth.unique().numel() == 1 and out.label is None
        depths.append(round(float(out.depth[0, 0, 0]), 4))
        flips += int(out.normals[0, 0, 0] < 0)
    counts = {d: depths.count(d) for d in set(depths)}
    assert set(counts) == {6.0, 5.0, 4.0}  # 6/1.0, 6/1.2, 6/1.5
    assert all(70 <= n <= 130 for n in counts.values()), counts  # ~100 each
    assert 120 <= flips <= 180  # ~150


def test_flip_probability_zero_and_one() -> None:
    sample = DenseSample(torch.zeros(3, 4, 4), normals=torch.tensor([1.0, 0.0, 0.0])[:, None, None].repeat(1, 4, 4))
    never = DenseAugmentation(scales=(1.0,), flip_probability=0.0)
    always = DenseAugmentation(scales=(1.0,), flip_probability=1.0)
    generator = torch.Generator().manual_seed(0)
    assert all(bool((never(sample, generator).normals[0] > 0).all()) for _ in range(20))
    assert all(bool((always(sample, generator).normals[0] < 0).all()) for _ in range(20))


def test_augmentation_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="scales"):
        DenseAugmentation(scales=(0.8, 1.0))
    with pytest.raises(ValueError, match="flip_probability"):
        DenseAugmentation(flip_probability=1.5)


class _Augmented(Dataset[torch.Tensor]):
    """Each item: the depth scale factor and flip drawn for it (from the per-worker generator)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        sample = DenseSample(torch.zeros(3, 6, 8), depth=torch.ones(1, 6, 8))
        sample.normals = torch.tensor([1.0, 0.0, 0.0])[:, None, None].repeat(1, 6, 8)
        out = DenseAugmentation()(sample, augmentation_generator())
        return torch.stack([out.depth[0, 0, 0], out.normals[0, 0, 0]])


def _draws(seed: int, workers: int) -> torch.Tensor:
    loader = DataLoader(_Augmented(), batch_size=4, num_workers=workers, generator=torch.Generator().manual_seed(seed))
    return torch.cat(list(loader))


def test_augmentation_in_workers_is_reproducible_given_the_loader_seed() -> None:
    assert augmentation_generator() is None  # main process: torch's global RNG
    first, again, other = _draws(0, 1), _draws(0, 1), _draws(1, 1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    torch.manual_seed(5)
    main_first = _draws(0, 0)
    torch.manual_seed(5)
    assert torch.equal(main_first, _draws(0, 0))


def test_scale_crop_renormalises_valid_normals_and_keeps_zero_ones() -> None:
    normals = torch.zeros(3, 2, 2)
    normals[:, 0, 0] = torch.tensor([0.0, 3.0, 4.0])  # length 5
    out = scale_crop(DenseSample(torch.zeros(3, 2, 2), normals=normals), 1.0, top=0, left=0)
    assert torch.allclose(out.normals[:, 0, 0], torch.tensor([0.0, 0.6, 0.8]))
    assert torch.equal(out.normals[:, 1, 1], torch.zeros(3)) and not out.normals.isnan().any()
