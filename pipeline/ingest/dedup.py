"""Exact and near-duplicate detection: normalised-text hash + MinHash LSH (datasketch).

Streaming: each document is checked against those kept before it, so the first of a cluster (in the
stable input order) is kept and the others point at it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.config import DedupSettings

_NOT_CONTENT = re.compile(r"\s+")
_MERSENNE = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)


def content_hash(text: str) -> str:
    """Hash of the text with all whitespace removed: equal for copies that differ only in layout."""
    return hashlib.sha1(_NOT_CONTENT.sub("", text).encode("utf-8")).hexdigest()


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """32-bit hashes of all character k-shingles, computed with numpy (no Python loop per shingle)."""
    codes = np.frombuffer(_NOT_CONTENT.sub("", text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < k:
        codes = np.pad(codes, (0, k - len(codes)))
    n = len(codes) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    for i in range(k):
        h = (h * np.uint64(1_000_003) + codes[i:i + n]) & _MAX_HASH
    return np.unique(h)


def minhash(text: str, settings: DedupSettings, chunk: int = 50_000) -> MinHash:
    """A datasketch MinHash of the text's shingles, updated exactly as `MinHash.update_batch` would."""
    sketch = MinHash(num_perm=settings.num_perm, seed=1)
    a, b = sketch.permutations
    hashes = shingle_hashes(text, settings.shingle_chars)
    for start in range(0, len(hashes), chunk):
        hv = hashes[start:start + chunk]
        with np.errstate(over="ignore"):
            phv = ((np.outer(hv, a) + b) % _MERSENNE) & _MAX_HASH
        sketch.hashvalues = np.minimum(phv.min(axis=0), sketch.hashvalues)
    return sketch


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

    def check(self, doc_id: str, text_hash: str, text: str) -> Duplicate | None:
        """None if the document is new (it is then remembered), else the duplicate it is of."""
        if text_hash in self.exact:
            return Duplicate("exact", self.exact[text_hash], 1.0)
        sketch = minhash(text, self.settings)
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
