"""Where the shared public datasets are (../shared/data, never copied into the project).

A fresh clone may not sit next to shared/: CLIENTELE_DATASETS_DIR points at them explicitly,
and the workplace's usual location is tried before giving up.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [
    *([Path(os.environ["CLIENTELE_DATASETS_DIR"])] if os.environ.get("CLIENTELE_DATASETS_DIR") else []),
    ROOT.parent / "shared" / "data",
    Path("/work/shared/data"),
]
DATA_DIR = next((p for p in _CANDIDATES if (p / "README.md").exists()), _CANDIDATES[0])


def dataset(name: str) -> Path:
    return DATA_DIR / name
