"""Exact and near-duplicate detection: normalised-text hash + MinHash LSH (datasketch).

Streaming: each document is checked against those kept before it, so the first of a cluster (in the
stable input order) is kept and the others point at it.

datasketch is imported when the first near-duplicate sketch is checked, not with this module: its
package imports scipy (half a second), which commands that never look for near duplicates (classify,
refresh, a headline archive with `dedup: same_date`) should not pay. A run that will look for them
starts that import in a thread (`load_index_early`), so it overlaps reading the first files.
"""
from __future__ import annotations

import hashlib
import importlib
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.config import DedupSettings

_MAX_HASH = np.uint64((1 << 32) - 1)


def content_hash(text: str) -> str:
    """Hash of the text with all whitespace removed: equal for copies that differ only in layout."""
    return hashlib.sha1("".join(text.split()).encode("utf-8")).hexdigest()


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """32-bit hashes of all character k-shingles (with repeats: MinHash ignores them), by numpy."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < k:
        codes = np.pad(codes, (0, k - len(codes)))
    n = len(codes) - k + 1
    h = codes[:n].copy()
    for i in range(1, k):
        h = (h * np.uint64(1_000_003) + codes[i:i + n]) & _MAX_HASH
    return h


@dataclass
class Sketch:
    """A document's MinHash signature (the least permuted hash per permutation), as plain numbers so
    that ingest's per-file cache stores it as JSON."""

    hashvalues: list[int]


def minhash(text: str, settings: DedupSettings, chunk: int = 50_000) -> Sketch:
    """The MinHash signature of a sample of the text's shingles.

    Speed matters here (it runs on every document): shingles are sampled by hash value (every
    `sample_mod`-th residue — the same shingles in every document, so Jaccard estimates stay unbiased)
    and permuted by multiply-shift hashing on uint64 instead of a modulo."""
    a, b = _multipliers(settings.num_perm)
    hashes = shingle_hashes(text, settings.shingle_chars)
    sampled = hashes[hashes % np.uint64(settings.sample_mod) == 0]
    hashes = sampled if len(sampled) >= 16 else hashes  # very short texts keep every shingle
    signature = np.full(settings.num_perm, _MAX_HASH, dtype=np.uint64)
    for start in range(0, len(hashes), chunk):
        with np.errstate(over="ignore"):
            permuted = (np.outer(hashes[start:start + chunk], a) + b) >> np.uint64(32)
        np.minimum(signature, permuted.min(axis=0), out=signature)
    return Sketch(signature.tolist())


@lru_cache(maxsize=4)
def _multipliers(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed odd 64-bit multipliers and offsets for multiply-shift hashing (seeded: stable across runs)."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    return a, b


class _Signature:
    """What MinHashLSH reads of a sketch: its hash values (a numpy array, cut into bands) and their
    number. It has no datasketch `scheme`, as its permutations are ours, so the index checks none."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: np.ndarray):
        self.hashvalues = hashvalues

    def __len__(self) -> int:
        return len(self.hashvalues)


@dataclass
class Duplicate:
    kind: str  # "exact" or "near"
    kept_doc_id: str
    similarity: float


class Deduplicator:
    def __init__(self, settings: DedupSettings):
        self.settings = settings
        self.exact: dict[str, str] = {}
        self.lsh = None  # datasketch's MinHashLSH, made for the first sketch
        self.signatures: dict[str, np.ndarray] = {}

    @staticmethod
    def load_index_early() -> None:
        """Import datasketch in a thread now: `check` then finds it loaded, or waits for the import to end."""
        threading.Thread(target=importlib.import_module, args=("datasketch",), name="import datasketch").start()

    def check(self, doc_id: str, text_hash: str, sketch: Sketch | None) -> Duplicate | None:
        """None if the document is new (it is then remembered), else the duplicate it is of; without a
        sketch only exact duplicates are looked for (and the document is not kept for near ones)."""
        if text_hash in self.exact:
            return Duplicate("exact", self.exact[text_hash], 1.0)
        if sketch is None:
            self.exact[text_hash] = doc_id
            return None
        if self.lsh is None:
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=self.settings.near_threshold, num_perm=self.settings.num_perm)
        signature = np.asarray(sketch.hashvalues, dtype=np.uint64)
        candidates = self.lsh.query(_Signature(signature))
        if candidates:  # estimated Jaccard: the share of permutations whose least hash agrees
            similarity = {c: float(np.mean(signature == self.signatures[c])) for c in candidates}
            best = max(sorted(candidates), key=similarity.get)  # ties: the first id, in sorted order
            similarity = similarity[best]
            if similarity >= self.settings.near_threshold:
                return Duplicate("near", best, round(similarity, 3))
        self.exact[text_hash] = doc_id
        self.lsh.insert(doc_id, _Signature(signature))
        self.signatures[doc_id] = signature
        return None
