"""The error raised for dataset files that are missing or not in the expected format."""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """A dataset file is missing or malformed; the message names the path and what was expected.

    A ``ValueError`` so that callers which already handle bad input (e.g. the CLI) report it as such.

    Example:
        >>> try:
        ...     raise DatasetFormatError("data/nyuv2/train/depth/5.npy: missing; expected one file per image index")
        ... except ValueError as error:
        ...     print(error)
        data/nyuv2/train/depth/5.npy: missing; expected one file per image index
    """
