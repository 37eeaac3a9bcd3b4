"""Shared fixtures. Tests never touch the network: the Hugging Face hub is switched off here."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"
sys.path.insert(0, str(ROOT / "scripts"))  # scripts/formats.py writes real files of each format


@pytest.fixture
def shared_corpora() -> Path:
    if not (SHARED_CORPORA / "cpc_congress_reports.jsonl").is_file():
        pytest.skip("../shared/corpora is absent (a fresh clone): real-corpus test skipped")
    return SHARED_CORPORA


@pytest.fixture
def scrape_file() -> Path:
    """A document-sharing-site scrape: junk lines around a paper flattened onto one line."""
    return ROOT / "tests" / "data" / "scrape_flattened.txt"


class _CreatesFileWhenUnpickled:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture
def planted_pickle(tmp_path) -> tuple[bytes, Path]:
    """A pickle whose unpickling creates a marker file (returned beside it): the proof that it was opened."""
    marker = tmp_path / "pickle_was_opened"
    return pickle.dumps(_CreatesFileWhenUnpickled(marker)), marker
