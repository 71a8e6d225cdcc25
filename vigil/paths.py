"""Where things live on disk: the model cache and the third-party test data."""

from __future__ import annotations

import os
from pathlib import Path

from vigil.errors import DataError


def models_dir() -> Path:
    """The model cache: ``VIGIL_MODELS``, else ``~/.cache/vigil/models``."""
    env = os.environ.get("VIGIL_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "vigil" / "models"


def data_root() -> Path:
    """The test-data directory: ``VIGIL_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("VIGIL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_file(relative: str) -> Path:
    """A file of the test data, or a one-line ``DataError`` saying where it was looked for."""
    path = data_root() / relative
    if not path.exists():
        raise DataError(f"test data {relative} not found in {data_root()} (set VIGIL_DATA to the data directory)")
    return path
