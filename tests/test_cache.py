"""The per-item result cache holds data, never code: entries are JSON, read back as the computing
function's annotated return type; entries of the old pickle format are never opened; an unreadable
entry is computed again with a warning, never a crash."""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cache import CACHE_FORMAT, ResultCache, cached_map, fingerprint
from pipeline.engines import Engine
from pipeline.ingest.dedup import Sketch

TEXTS = ["坚持全面从严治党", "深化党的自我革命", "一段与主题无关的话"]


@dataclass
class Source:
    path: str
    line: int


@dataclass
class Summary:
    """A result with what ingest's results hold: a Counter, a MinHash sketch, optional parts, a dict."""

    text: str
    counts: Counter
    sketch: Sketch
    source: Source | None = None
    fields: dict | None = None


def summarise(text: str) -> list[Summary]:
    sketch = Sketch([ord(ch) * 2**40 for ch in text])  # MinHash values are 64-bit numbers
    return [Summary(text, Counter(text), sketch, Source("in.txt", len(text)), {"n": len(text), "tags": ["a"]}),
            Summary(text[::-1], Counter(), sketch)]


def key_of(text: str) -> str:
    return fingerprint("summarise", text)


def run(cache: ResultCache, func=summarise) -> list:
    return list(cached_map(func, lambda: TEXTS, key_of, cache, Engine()))


def entry_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_results_come_back_from_json_entries_as_their_annotated_types(tmp_path):
    cold = ResultCache(tmp_path / "cache")
    fresh = run(cold)
    warm = ResultCache(tmp_path / "cache")
    again = run(warm)
    assert again == fresh == [summarise(text) for text in TEXTS]
    assert (cold.computed, warm.hits, warm.computed) == (3, 3, 0)
    assert isinstance(again[0][0].sketch, Sketch) and again[0][0].sketch == fresh[0][0].sketch
    files = entry_files(tmp_path / "cache")
    assert len(files) == 3 and all(p.name.endswith(f".v{CACHE_FORMAT}.json") for p in files)
    assert all(isinstance(json.loads(p.read_text(encoding="utf-8")), list) for p in files)


def test_an_entry_of_the_old_pickle_format_is_never_opened(tmp_path, planted_pickle):
    payload, marker = planted_pickle
    key = key_of(TEXTS[0])
    old_entry = tmp_path / "cache" / key[:2] / f"{key}.pkl"  # where format 1 kept it
    old_entry.parent.mkdir(parents=True)
    old_entry.write_bytes(payload)
    cache = ResultCache(tmp_path / "cache")
    assert run(cache) == [summarise(text) for text in TEXTS]
    assert cache.computed == 3 and not marker.exists()


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],  # truncated
    lambda data: b'[{"text": "x", "counts": {}, "sketch": {"seed": 1}}]',  # JSON, but not a Summary
    lambda data: b'{"__reduce__": ["os.system", ["echo hi"]]}',  # JSON naming code: it stays data
    lambda data: b"\x80\x04\x95 not json",
], ids=["truncated", "wrong shape", "names code", "binary"])
def test_an_unreadable_entry_is_computed_again_with_a_warning(tmp_path, caplog, damage):
    run(ResultCache(tmp_path / "cache"))
    entry = tmp_path / "cache" / key_of(TEXTS[1])[:2] / f"{key_of(TEXTS[1])}.v{CACHE_FORMAT}.json"
    entry.write_bytes(damage(entry.read_bytes()))
    cache = ResultCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="pipeline.cache"):
        assert run(cache) == [summarise(text) for text in TEXTS]
    assert (cache.hits, cache.computed, cache.unreadable) == (2, 1, 1)
    assert any(str(entry) in record.getMessage() and "computing it again" in record.getMessage()
               for record in caplog.records)
    repaired = ResultCache(tmp_path / "cache")
    run(repaired)
    assert repaired.hits == 3


def pairs(text: str) -> list[tuple[str, int]]:
    return [(text, len(text))]


def test_a_result_that_would_not_read_back_equal_is_returned_but_not_stored(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    assert run(cache, pairs) == [pairs(text) for text in TEXTS]  # JSON would turn the tuples into lists
    assert entry_files(tmp_path / "cache") == []
    again = ResultCache(tmp_path / "cache")
    run(again, pairs)
    assert (again.hits, again.computed) == (0, 3)
