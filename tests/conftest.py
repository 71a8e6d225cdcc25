"""Shared fixtures: the third-party data directory (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.paths import data_root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "video" / "vtest.avi").exists():
        pytest.skip(f"third-party test data not found in {root} (set VIGIL_DATA)")
    return root
