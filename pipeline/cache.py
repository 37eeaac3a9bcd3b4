"""Per-item results of a stage kept between runs (`.cache/pipeline/<stage>/`), so a rerun after adding
10 documents to 100,000 computes 10.

An entry's key covers everything its result depends on: the item itself (a file's bytes, the path shown
for it and its sidecar metadata; a document row), the stage's settings, and the code that computes it
(the stage's modules and rules, and the versions of the libraries that read the data). Change any
of these and the item is computed again: nothing is ever invalidated by hand.

Entries are JSON, never pickles: a cache may be restored from a shared store (the scheduled refresh
does so), and unpickling a planted file would run its code. A result is stored as its function's
return annotation says (`list[Prepared]`, `list[dict]`): dataclasses field by field, Counters as
mappings; reading builds only those annotated types, so an entry's content never chooses what is
constructed. A result that would not read back equal is simply
not stored. An unreadable entry (truncated, edited) is a miss with a warning, computed again.
CACHE_FORMAT is in every entry's name, so entries of another format (the old `.pkl` files included) are
never opened. Entries are written atomically; delete the folder to reclaim space.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import json
import logging
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.engines import Engine, map_ordered

log = logging.getLogger("pipeline.cache")
CACHE_FORMAT = 2  # 1 was pickle


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


class UnreadableEntry(ValueError):
    """A cache entry that cannot be read back (truncated, edited, or not what the function returns)."""


class ResultCodec:
    """A function's results ⇄ JSON data, led by its return annotation (unannotated: JSON's own types)."""

    def __init__(self, hint: Any = Any):
        self.hint = hint

    @classmethod
    def of(cls, func: Callable) -> ResultCodec:
        while isinstance(func, functools.partial):
            func = func.func
        try:
            return cls(typing.get_type_hints(func).get("return", Any))
        except (NameError, TypeError):  # an annotation that does not resolve: store JSON's own types only
            return cls()

    def to_data(self, value: Any) -> Any:
        return _converter(self.hint, True)(value)

    def from_data(self, data: Any) -> Any:
        return _converter(self.hint, False)(data)


def _identity(value: Any) -> Any:
    return value  # JSON's own types; anything else fails to encode or fails the round trip in put()


@functools.lru_cache(maxsize=None)
def _converter(hint: Any, to_data: bool) -> Callable[[Any], Any]:
    """A function turning a value of type `hint` into JSON data (to_data), or back; only the annotated
    types are built. Made once per type, so a cache of 75,000 documents is not 10 million type checks:
    a list of JSON's own types (a sketch's 128 numbers) is copied whole."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        if len(members) != 1:
            def unsupported(value):
                if value is None:
                    return None
                raise TypeError(f"cannot store a value of {hint}: only `X | None` unions are supported")
            return unsupported
        member = _converter(members[0], to_data)
        return lambda value: None if value is None else member(value)
    if origin is list:
        item = _converter(args[0] if args else Any, to_data)
        return list if item is _identity else lambda value: [item(x) for x in value]
    if dataclasses.is_dataclass(hint):
        field_hints = typing.get_type_hints(hint)
        fields = [(f.name, _converter(field_hints[f.name], to_data)) for f in dataclasses.fields(hint)
                  if to_data or f.init]
        if to_data:
            return lambda value: {name: convert(getattr(value, name)) for name, convert in fields}
        return lambda data: hint(**{name: convert(data[name]) for name, convert in fields})
    if hint is Counter or origin is Counter:
        return dict if to_data else Counter
    return _identity


class ResultCache:
    """JSON results under `directory`, one file per key. A key is a fingerprint of everything the
    result depends on (see the module docstring), so a stale entry is never found, only left behind."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.hits = 0
        self.computed = 0
        self.unreadable = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.v{CACHE_FORMAT}.json"

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str, codec: ResultCodec) -> Any:
        path = self._path(key)
        try:
            return codec.from_data(json.loads(path.read_bytes().decode("utf-8", "surrogatepass")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:  # ValueError: bad JSON too
            raise UnreadableEntry(f"cache entry {path} is unreadable ({type(err).__name__}: {err})") from None

    def put(self, key: str, value: Any, codec: ResultCodec) -> bool:
        """Store `value` if it reads back equal (True); a value JSON cannot hold is left uncached."""
        try:
            text = json.dumps(codec.to_data(value), ensure_ascii=False)
            stored = codec.from_data(json.loads(text)) == value
        except (TypeError, ValueError, KeyError, AttributeError):
            stored = False
        if stored:
            io.write_bytes(self._path(key), text.encode("utf-8", "surrogatepass"))  # lone surrogates kept as read
        else:
            log.debug("cache %s: a result of type %s is not stored (it would not read back equal)",
                      self.directory, codec.hint)
        return stored


def cached_map(func: Callable[[Any], Any], source: Callable[[], Iterable], key_of: Callable[[Any], str],
               cache: ResultCache | None, engine: Engine, batch: int = 4) -> Iterator:
    """`func(item)` for each item of `source()`, in order, as `map_ordered` gives it; items whose key is
    in `cache` are read from it instead, and new results are added to it.

    `source` is called twice — once for the keys, once for the items to compute — so that neither the
    items nor the results are ever all in memory at once; a third time, lazily, only if a cached entry
    turns out unreadable (that item is then computed here, in this process).
    """
    if cache is None:
        yield from map_ordered(func, source(), engine, batch)
        return
    codec = ResultCodec.of(func)
    keys = [key_of(item) for item in source()]
    cached = [cache.has(key) for key in keys]
    todo = (item for item, hit in zip(source(), cached) if not hit)
    computed = map_ordered(func, todo, engine, batch)
    again: Iterator | None = None  # (position, item) of a third pass, opened at the first unreadable entry
    for position, (key, hit) in enumerate(zip(keys, cached)):
        if hit:
            try:
                result = cache.get(key, codec)
            except UnreadableEntry as err:
                log.warning("%s: computing it again", err)
                cache.unreadable += 1
                again = again or enumerate(source())
                result = func(next(item for index, item in again if index == position))
                hit = False
        else:
            result = next(computed)
        if hit:
            cache.hits += 1
        else:
            cache.put(key, result, codec)
            cache.computed += 1
        yield result
    log.info("cache %s: %d results reused, %d computed%s", cache.directory, cache.hits, cache.computed,
             f" ({cache.unreadable} unreadable entries replaced)" if cache.unreadable else "")
