"""Exact and near-duplicate detection: normalised-text hash + MinHash LSH (datasketch).

Streaming: each document is checked against those kept before it, so the first of a cluster (in the
stable input order) is kept and the others point at it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.config import DedupSettings

_NOT_CONTENT = re.compile(r"\s+")
_MAX_HASH = np.uint64((1 << 32) - 1)


def content_hash(text: str) -> str:
    """Hash of the text with all whitespace removed: equal for copies that differ only in layout."""
    return hashlib.sha1(_NOT_CONTENT.sub("", text).encode("utf-8")).hexdigest()


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


def minhash(text: str, settings: DedupSettings, chunk: int = 50_000) -> MinHash:
    """A datasketch MinHash of a sample of the text's shingles.

    Speed matters here (it runs on every document): shingles are sampled by hash value (every
    `sample_mod`-th residue — the same shingles in every document, so Jaccard estimates stay unbiased)
    and permuted by multiply-shift hashing on uint64 instead of a modulo."""
    sketch = MinHash(num_perm=settings.num_perm, seed=1)
    a, b = _multipliers(settings.num_perm)
    hashes = shingle_hashes(text, settings.shingle_chars)
    sampled = hashes[hashes % np.uint64(settings.sample_mod) == 0]
    hashes = sampled if len(sampled) >= 16 else hashes  # very short texts keep every shingle
    for start in range(0, len(hashes), chunk):
        hv = hashes[start:start + chunk]
        with np.errstate(over="ignore"):
            phv = (np.outer(hv, a) + b) >> np.uint64(32)
        sketch.hashvalues = np.minimum(phv.min(axis=0), sketch.hashvalues).astype(sketch.hashvalues.dtype)
    return sketch


@lru_cache(maxsize=4)
def _multipliers(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed odd 64-bit multipliers and offsets for multiply-shift hashing (seeded: stable across runs)."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    return a, b


@dataclass
class Duplicate:
    kind: str  # "exact" or "near"
    kept_doc_id: str
    similarity: float


class Deduplicator:
    def __init__(self, settings: DedupSettings):
        self.settings = settings
        self.exact: dict[str, str] = {}
        self.lsh = MinHashLSH(threshold=settings.near_threshold, num_perm=settings.num_perm)
        self.sketches: dict[str, MinHash] = {}

    def check(self, doc_id: str, text_hash: str, sketch: MinHash) -> Duplicate | None:
        """None if the document is new (it is then remembered), else the duplicate it is of."""
        if text_hash in self.exact:
            return Duplicate("exact", self.exact[text_hash], 1.0)
        candidates = self.lsh.query(sketch)
        if candidates:
            best = max(sorted(candidates), key=lambda c: sketch.jaccard(self.sketches[c]))
            similarity = sketch.jaccard(self.sketches[best])
            if similarity >= self.settings.near_threshold:
                return Duplicate("near", best, round(float(similarity), 3))
        self.exact[text_hash] = doc_id
        self.lsh.insert(doc_id, sketch)
        self.sketches[doc_id] = sketch
        return None
