import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    return Path(os.environ.get("ADS_VECTORS_DIR", REPO.parent / "shared" / "vectors"))


@pytest.fixture
def vectors() -> Path:
    return vectors_dir()
