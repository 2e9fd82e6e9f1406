"""The one resize rule (painterly.imageio.tensors): fit_size says the size, resize makes it."""

from __future__ import annotations

import pytest
import torch

from painterly.errors import ConfigError
from painterly.imageio import fit_size, resize, resize_longest, resize_to


@pytest.mark.parametrize(
    "height, width, longest, min_side, expected",
    [
        (3000, 2000, 512, 16, (512, 341)),  # 341.33 rounds down
        (2000, 3000, 512, 16, (341, 512)),  # and the transpose is the transpose
        (101, 150, 100, 16, (67, 100)),  # 67.33
        (17, 31, 100, 16, (55, 100)),  # upscaling: 54.84 rounds up
        (997, 13, 256, 16, (256, 16)),  # 3.34 px would be too thin: min_side
        (997, 13, 256, 1, (256, 3)),
        (5, 10, 5, 1, (2, 5)),  # 2.5: Python's round goes to even...
        (7, 10, 5, 1, (4, 5)),  # ... 3.5 too
        (1000, 3, 10, 1, (10, 1)),  # 0.03 px: never below min_side
        (64, 64, 32, 16, (32, 32)),
        (48, 64, 64, 16, (48, 64)),  # already that size
    ],
)
def test_fit_size(height, width, longest, min_side, expected) -> None:
    assert fit_size(height, width, longest, min_side) == expected
    assert fit_size(width, height, longest, min_side) == expected[::-1]


def test_fit_size_default_min_side_is_the_engines_16() -> None:
    assert fit_size(1000, 10, 64) == (64, 16)


@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (1, 250), (101, 150), (64, 64), (9, 700)])
@pytest.mark.parametrize("longest", [16, 33, 64, 200])
def test_resize_longest_is_resize_of_fit_size(shape: tuple[int, int], longest: int) -> None:
    image = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(sum(shape)))
    for min_side in (1, 16):
        expected = resize(image, fit_size(*shape, longest, min_side))
        assert torch.equal(resize_longest(image, longest, min_side=min_side), expected)
    assert torch.equal(resize_longest(image, longest), resize(image, fit_size(*shape, longest, 1)))


def test_resize_is_bicubic_antialiased_when_shrinking_and_clamped() -> None:
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    assert resize(image, (20, 30)) is image  # nothing to do: the very same tensor
    down = resize(image, (10, 12))
    ref = torch.nn.functional.interpolate(
        image, size=(10, 12), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)
    assert torch.equal(down, ref)
    # One side grows and the other shrinks: still antialiased (the shrinking side must not alias).
    mixed = torch.nn.functional.interpolate(
        image, size=(40, 12), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)
    assert torch.equal(resize(image, (40, 12)), mixed)
    step = torch.zeros(1, 3, 4, 8)
    step[..., 4:] = 1.0
    up = resize(step, (16, 32))  # bicubic overshoots at a hard edge; the result must not
    assert up.min() == 0 and up.max() == 1


def test_resize_to_goes_through_resize() -> None:
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    assert torch.equal(resize_to(image, 11, 7), resize(image, (11, 7)))
    same = resize_to(image, 20, 30)
    assert same is not image and torch.equal(same, image)  # resize_to always returns a new tensor
    with pytest.raises(ConfigError):
        resize_longest(image, 32, min_side=0)
