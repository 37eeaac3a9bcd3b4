"""Per-item results of a stage kept between runs (`.cache/pipeline/<stage>/`), so a rerun after adding
10 documents to 100,000 computes 10.

An entry's key covers everything its result depends on: the item itself (a file's bytes, the path shown
for it and its sidecar metadata; a document row), the stage's settings, and the code that computes it
(the stage's modules and rules, and the versions of the libraries that read the data). Change any
of these and the item is computed again: nothing is ever invalidated by hand. Entries are pickles
written atomically; delete the folder to reclaim space.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import logging
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.engines import Engine, map_ordered

log = logging.getLogger("pipeline.cache")


def fingerprint(*parts) -> str:
    """sha256 of the JSON of `parts` (dataclasses as dicts): equal parts give equal fingerprints."""
    def plain(obj):
        if dataclasses.is_dataclass(obj):
            return dataclasses.asdict(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj, key=str)  # a set's order changes from run to run
        return str(obj)  # a compiled pattern, a path: their text

    text = json.dumps(parts, default=plain, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def code_version(modules: Iterable[str], distributions: Iterable[str] = ()) -> str:
    """A fingerprint of the source of `modules` (a package: every .py file in it) and of the installed
    versions of `distributions`."""
    parts = []
    for name in modules:
        root = Path(importlib.import_module(name).__file__)
        sources = sorted(root.parent.rglob("*.py")) if root.name == "__init__.py" else [root]
        parts += [(str(p.relative_to(root.parent)), file_digest(p)) for p in sources]
    parts += [(name, importlib.metadata.version(name)) for name in distributions]
    return fingerprint(parts)


class ResultCache:
    """Pickled results under `directory`, one file per key. A key is a fingerprint of everything the
    result depends on (see the module docstring), so a stale entry is never found, only left behind."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.hits = 0
        self.computed = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pkl"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> Any:
        path = self._path(key)
        try:
            return pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
            raise OSError(f"cache entry {path} is unreadable ({type(err).__name__}): delete "
                          f"{self.directory} and rerun") from None

    def put(self, key: str, value: Any) -> None:
        io.write_bytes(self._path(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def cached_map(func: Callable[[Any], Any], source: Callable[[], Iterable], key_of: Callable[[Any], str],
               cache: ResultCache | None, engine: Engine, batch: int = 4) -> Iterator:
    """`func(item)` for each item of `source()`, in order, as `map_ordered` gives it; items whose key is
    in `cache` are read from it instead, and new results are added to it.

    `source` is called twice — once for the keys, once for the items to compute — so that neither the
    items nor the results are ever all in memory at once.
    """
    if cache is None:
        yield from map_ordered(func, source(), engine, batch)
        return
    keys = [key_of(item) for item in source()]
    cached = [cache.has(key) for key in keys]
    todo = (item for item, hit in zip(source(), cached) if not hit)
    computed = map_ordered(func, todo, engine, batch)
    for key, hit in zip(keys, cached):
        if hit:
            cache.hits += 1
            yield cache.get(key)
        else:
            result = next(computed)
            cache.put(key, result)
            cache.computed += 1
            yield result
    log.info("cache %s: %d results reused, %d computed", cache.directory, cache.hits, cache.computed)
