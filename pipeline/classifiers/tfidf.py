"""The TF-IDF baseline: character n-grams + jieba word n-grams of the paragraph, and word n-grams of its
context (document title and headings, weighted `context_weight`), one logistic regression per theme
(one-vs-rest, class-balanced), per-theme thresholds tuned on dev. Silver targets (probabilities) are
thresholded at 0.5 and enter with their row weight scaled by their confidence. A paragraph scored
without its context gets no context features (nothing learnt from titles is assumed).

A saved model is data only, so loading one can never run code (no pickle):
  tfidf.json         the vocabularies in column order (character n-grams as strings, word n-grams as
                     lists of words; `context_ngrams` and `context_weight` when trained with contexts)
                     and the score of each theme that had a single class in training
  tfidf.safetensors  `chars.idf`, `words.idf` (and `context.idf`), `coef` (themes × features:
                     characters, words, context) and `intercept`, float64

Scoring computes what scikit-learn's TfidfVectorizer(sublinear_tf=True) and
LogisticRegression.predict_proba compute, for a whole batch at once in numpy: each text is cut into
words once (by jieba's Rust port), and n-grams are looked up as integer keys, never built as strings.
Training alone imports scikit-learn.
"""
from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import asdict
from itertools import chain, repeat
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline import io
from pipeline.classifiers.base import ModelError, ThemeClassifier, retrain_hint
from pipeline.classifiers.settings import BaselineSettings
from pipeline.config import build_settings
from pipeline.text import words

VOCABULARY_FILE = "tfidf.json"
WEIGHTS_FILE = "tfidf.safetensors"
FORMAT = 1  # of those two files
BATCH = 2048  # texts vectorised together: big enough for numpy to pay off, small enough to bound memory
SEPARATOR = -1  # the unit between two texts (no n-gram crosses it), and of a word outside the vocabulary
RETRAIN = retrain_hint("baseline")
_WHITESPACE_RUN = re.compile(r"\s\s+")  # collapsed to one space before character n-grams, as scikit-learn does


class NgramTable:
    """Finds the vocabulary's n-grams in a run of integer units (code points, word ids), every position of
    a batch at once. Level n is a hash index of the keys of the vocabulary's n-unit prefixes, a key
    being (the position of its first n-1 units at level n-1) << 32 | its last unit; so a lookup is one
    vectorised hash probe per n (pandas' get_indexer: several times faster than a binary search)."""

    def __init__(self, units: np.ndarray, lengths: np.ndarray):
        """Column j's n-gram is the next `lengths[j]` of `units` (every column's units, concatenated)."""
        if len(lengths) and (lengths.min() < 1 or units.min(initial=0) < 0 or units.max(initial=0) >= 1 << 32):
            raise ValueError("an empty n-gram or a unit out of range")
        starts = np.cumsum(lengths) - lengths
        prefix = np.zeros(len(lengths), dtype=np.int64)  # each column's node at the previous level
        self.levels: list[tuple[pd.Index, np.ndarray]] = []  # (keys, column of each; -1: a prefix only)
        for n in range(1, int(lengths.max(initial=0)) + 1):
            longer = np.flatnonzero(lengths >= n)
            unit = units[starts[longer] + n - 1]
            keys = unit if n == 1 else (prefix[longer] << 32) | unit
            level_keys, node = np.unique(keys, return_inverse=True)
            prefix[longer] = node
            columns = np.full(len(level_keys), -1, dtype=np.int64)
            ending = lengths[longer] == n
            columns[node[ending]] = longer[ending]
            self.levels.append((pd.Index(level_keys), columns))
        if sum(int((columns >= 0).sum()) for _, columns in self.levels) != len(lengths):
            raise ValueError("the same n-gram is listed twice")

    def occurrences(self, units: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every vocabulary n-gram occurring in `units`, where `rows[i]` is the text of
        position i and every text, the last one included, ends with SEPARATOR."""
        found_rows, found_columns = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        starts, node = np.arange(len(units)), None  # positions whose n-gram so far is a known prefix, its node
        for n, (keys, columns) in enumerate(self.levels):
            # the next unit of a live prefix is at most the SEPARATOR ending its text, whose key
            # (node << 32 | -1 == -1) is never found: so an n-gram never runs past its text
            node = keys.get_indexer(units if n == 0 else (node << 32) | units[starts + n])
            live = node >= 0
            starts, node = starts[live], node[live]
            column = columns[node]
            counted = column >= 0
            found_rows.append(rows[starts[counted]])
            found_columns.append(column[counted])
        return np.concatenate(found_rows), np.concatenate(found_columns)


class NgramBlock(ABC):
    """One block of TF-IDF features: its vocabulary, idf and lookup table. Subclasses turn texts into units."""

    def __init__(self, features: list, idf: np.ndarray):
        if len(features) != len(idf):
            raise ValueError(f"{len(features)} n-grams but {len(idf)} idf weights")
        self.features, self.idf = features, idf
        self.table = NgramTable(*self._feature_units(features))

    @classmethod
    def fit(cls, texts: list[str], ngram_range: list[int], min_df: int, max_features: int | None = None):
        """The n-grams found in at least `min_df` texts (the `max_features` most frequent), with smoothed idf."""
        units, rows, decode = cls._training_units(texts)
        grams, lengths, df, total = observed_ngrams(units, rows, *ngram_range)
        keep = np.flatnonzero(df >= min_df)
        if max_features is not None and len(keep) > max_features:
            by_count = np.argsort(-total[keep], kind="stable")  # ties keep vocabulary order
            keep = np.sort(keep[by_count[:max_features]])
        idf = np.log((1 + len(texts)) / (1 + df[keep])) + 1  # TfidfVectorizer's smooth_idf
        return cls([decode(grams[j, :lengths[j]]) for j in keep], idf)

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        """Sublinear tf × idf, each row scaled to unit length (TfidfVectorizer's sublinear_tf, norm='l2')."""
        rows, columns = self.table.occurrences(*self._units(texts))
        occurrences = sparse.coo_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(texts), len(self.features)))
        x = occurrences.tocsc().tocsr()  # two linear passes leave each row's columns sorted: cheaper than sorting rows
        x.sum_duplicates()  # counts
        x.data = (1 + np.log(x.data)) * self.idf[x.indices]
        row_of = np.repeat(np.arange(len(texts)), np.diff(x.indptr))
        x.data /= np.sqrt(np.bincount(row_of, weights=x.data ** 2, minlength=len(texts)))[row_of]
        return x

    @abstractmethod
    def _feature_units(self, features: list) -> tuple[np.ndarray, np.ndarray]:
        """The units of every feature, concatenated, and each feature's length."""

    @abstractmethod
    def _units(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Units of `texts`, each text followed by SEPARATOR, and the text of each position."""

    @classmethod
    @abstractmethod
    def _training_units(cls, texts: list[str]):
        """Units of `texts` with no vocabulary yet, their rows, and a function from units to a feature."""


class CharNgrams(NgramBlock):
    """Character n-grams of the lower-cased text with whitespace runs collapsed; units are code points."""

    def _feature_units(self, features: list[str]):
        return code_points("".join(features)), np.fromiter(map(len, features), np.int64, len(features))

    def _units(self, texts):
        return char_units(texts)

    @classmethod
    def _training_units(cls, texts):
        return *char_units(texts), lambda gram: "".join(map(chr, gram.tolist()))


class WordNgrams(NgramBlock):
    """Word n-grams of jieba's cut; units are indexes in the sorted set of the vocabulary's words."""

    def __init__(self, features: list[list[str]], idf: np.ndarray):
        if not all(isinstance(f, list) and f and all(isinstance(w, str) for w in f) for f in features):
            raise ValueError("a word n-gram is not a non-empty list of words")
        self.lexicon = {word: i for i, word in enumerate(sorted({w for f in features for w in f}))}
        super().__init__(features, idf)

    def _feature_units(self, features):
        units = np.fromiter((self.lexicon[w] for f in features for w in f), np.int64)
        return units, np.fromiter(map(len, features), np.int64, len(features))

    def _units(self, texts):
        return word_units([words(text) for text in texts], self.lexicon)

    @classmethod
    def _training_units(cls, texts):
        cut = [words(text) for text in texts]
        lexicon = sorted({w for ws in cut for w in ws})
        units, rows = word_units(cut, {word: i for i, word in enumerate(lexicon)})
        return units, rows, lambda gram: [lexicon[i] for i in gram.tolist()]


def char_units(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    prepared = [_WHITESPACE_RUN.sub(" ", text.lower()) for text in texts]
    lengths = np.fromiter(map(len, prepared), np.int64, len(prepared)) + 1  # + the separator
    units = code_points("\0".join(prepared) + "\0")
    units[np.cumsum(lengths) - 1] = SEPARATOR
    units[(units >= 0xD800) & (units <= 0xDFFF)] = SEPARATOR  # lone surrogates: not text, and not JSON-safe
    return units, np.repeat(np.arange(len(texts)), lengths)


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)


def word_units(cut: list[list[str]], lexicon: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    joined = list(chain.from_iterable(chain(ws, (None,)) for ws in cut))  # None: the separator
    units = np.fromiter(map(lexicon.get, joined, repeat(SEPARATOR)), np.int64, len(joined))
    return units, np.repeat(np.arange(len(cut)), [len(ws) + 1 for ws in cut])


def observed_ngrams(units: np.ndarray, rows: np.ndarray, shortest: int, longest: int):
    """Every n-gram (shortest ≤ n ≤ longest) in `units`, by n then unit order: a padded array of their
    units, their lengths, the number of texts each occurs in and its total count."""
    grams, lengths, df, total = [], [], [], []
    for n in range(shortest, min(longest, len(units)) + 1):
        windows = np.lib.stride_tricks.sliding_window_view(units, n)
        whole = (windows >= 0).all(axis=1)
        found, inverse = np.unique(windows[whole], axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        total.append(np.bincount(inverse, minlength=len(found)))
        in_texts = np.unique(rows[:len(windows)][whole] * len(found) + inverse) % len(found)
        df.append(np.bincount(in_texts, minlength=len(found)))
        grams.append(np.pad(found, ((0, 0), (0, longest - n)), constant_values=SEPARATOR))
        lengths.append(np.full(len(found), n))
    if not grams:
        return np.zeros((0, longest), np.int64), *(np.zeros(0, np.int64) for _ in range(3))
    return np.vstack(grams), np.concatenate(lengths), np.concatenate(df), np.concatenate(total)


class TfidfClassifier(ThemeClassifier):
    method = "baseline"
    weight_files = (VOCABULARY_FILE, WEIGHTS_FILE)

    def __init__(self, codebook, params=None):
        super().__init__(codebook, asdict(build_settings(BaselineSettings, params, "baseline")))
        self.blocks: list[NgramBlock] = []  # characters, words, and the context's words when trained with contexts
        self.context_weight = 0.0  # the context block's scale (its rows are unit length, as the text blocks')
        self.coef = np.zeros((len(self.themes), 0))  # themes × features of all blocks
        self.intercept = np.zeros(len(self.themes))
        self.block_coefs: list[np.ndarray] = []  # each block's features × themes, contiguous for the matmul
        self.constant_scores: dict[str, float] = {}  # a theme with one class in training scores that class

    def fit(self, texts, targets, dev_texts=None, dev_targets=None, weights=None, contexts=None, dev_contexts=None):
        from sklearn.linear_model import LogisticRegression

        p = self.params
        weights = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=float)
        self.blocks = [CharNgrams.fit(texts, p["char_ngrams"], p["min_df"], p["max_features"]),
                       WordNgrams.fit(texts, p["word_ngrams"], p["min_df"])]
        self.context_weight = 0.0
        if contexts is not None and p["context_weight"] > 0 and any(contexts):
            # some rows learn without their context, so that the text's own features keep their weight for
            # paragraphs that come without one (classify input with text alone)
            dropped = np.random.default_rng(p["seed"]).random(len(texts)) < p["context_dropout"]
            contexts = ["" if drop else context for context, drop in zip(contexts, dropped)]
            self.blocks.append(WordNgrams.fit(contexts, p["word_ngrams"], p["min_df"]))
            self.context_weight = float(p["context_weight"])
        x = self._features(texts, contexts)
        coef, intercept = np.zeros((len(self.themes), x.shape[1])), np.zeros(len(self.themes))
        self.constant_scores = {}
        for j, theme in enumerate(self.themes):
            y = (targets[:, j] >= 0.5).astype(int)
            confidence = np.where(y == 1, targets[:, j], 1 - targets[:, j])
            if y.min() == y.max():
                self.constant_scores[theme] = float(y[0])
                continue
            model = LogisticRegression(C=p["C"], class_weight="balanced", max_iter=2000, random_state=p["seed"])
            model.fit(x, y, sample_weight=weights * confidence)
            coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
        self._set_weights(coef, intercept)
        self.info.update({"train_rows": len(texts), "features": int(x.shape[1])})
        if dev_texts:
            self.tune_thresholds(dev_texts, dev_targets, dev_contexts=dev_contexts)
        return self

    def _block_inputs(self, texts: list[str], contexts: list[str] | None):
        """(block index, its inputs, its scale) of every block that has inputs: no contexts, no context block."""
        yield 0, texts, 1.0  # characters
        yield 1, texts, 1.0  # words
        if len(self.blocks) > 2 and contexts is not None:
            yield 2, list(contexts), self.context_weight

    def _features(self, texts: list[str], contexts: list[str] | None = None) -> sparse.csr_matrix:
        parts = [self.blocks[i].transform(inputs) * scale for i, inputs, scale in self._block_inputs(texts, contexts)]
        if len(self.blocks) > len(parts):  # the context block's columns, empty
            parts.append(sparse.csr_matrix((len(texts), len(self.blocks[-1].features))))
        return sparse.hstack(parts, format="csr")

    def _set_weights(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef, self.intercept = coef, intercept
        ends = np.cumsum([len(block.features) for block in self.blocks])
        self.block_coefs = [np.ascontiguousarray(part.T) for part in np.split(coef, ends[:-1], axis=1)]

    def predict_scores(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        if not self.blocks:
            raise RuntimeError("the baseline model is not trained: call fit() or load a saved model")
        texts = list(texts)
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
        scores = np.zeros((len(texts), len(self.themes)))
        for start in range(0, len(texts), BATCH):
            batch = texts[start:start + BATCH]
            batch_contexts = None if contexts is None else contexts[start:start + BATCH]
            logits = self.intercept + sum(scale * self._block_logits(i, inputs)
                                          for i, inputs, scale in self._block_inputs(batch, batch_contexts))
            scores[start:start + BATCH] = 1 / (1 + np.exp(-np.clip(logits, -500, 500)))  # predict_proba
        for theme, value in self.constant_scores.items():
            scores[:, self.themes.index(theme)] = value
        return scores

    def _block_logits(self, block: int, inputs: list[str]) -> np.ndarray:
        if block < 2:
            return self.blocks[block].transform(inputs) @ self.block_coefs[block]
        # a document's paragraphs share one context: each distinct context is cut into words and looked up once
        distinct, inverse = np.unique(np.asarray(inputs, dtype=object), return_inverse=True)
        return (self.blocks[block].transform(distinct.tolist()) @ self.block_coefs[block])[inverse.reshape(-1)]

    def save_weights(self, directory: Path) -> None:
        from safetensors.numpy import save

        chars, words_, *context = self.blocks
        vocabulary = {"format": FORMAT, "char_ngrams": chars.features, "word_ngrams": words_.features,
                      "constant_scores": self.constant_scores}
        tensors = {"chars.idf": chars.idf, "words.idf": words_.idf, "coef": self.coef, "intercept": self.intercept}
        if context:
            vocabulary.update(context_ngrams=context[0].features, context_weight=self.context_weight)
            tensors["context.idf"] = context[0].idf
        io.write_text(directory / VOCABULARY_FILE, json.dumps(vocabulary, ensure_ascii=False))
        io.write_bytes(directory / WEIGHTS_FILE, save(tensors))

    def load_weights(self, directory: Path) -> None:
        """Rebuild the model from its two files; a ModelError names the file that is wrong and how."""
        vocabulary_file, weights_file = directory / VOCABULARY_FILE, directory / WEIGHTS_FILE
        vocabulary = _read_vocabulary(vocabulary_file, self.themes)
        tensors = _read_weights(weights_file)
        try:
            self.blocks = [CharNgrams(vocabulary["char_ngrams"], tensors["chars.idf"]),
                           WordNgrams(vocabulary["word_ngrams"], tensors["words.idf"])]
            if "context_ngrams" in vocabulary:
                self.blocks.append(WordNgrams(vocabulary["context_ngrams"], tensors["context.idf"]))
        except (ValueError, KeyError) as err:
            raise ModelError(f"{vocabulary_file} (with {weights_file.name}): {err}; {RETRAIN}") from None
        n_features = sum(len(block.features) for block in self.blocks)
        if tensors["coef"].shape != (len(self.themes), n_features) or tensors["intercept"].shape != (len(self.themes),):
            raise ModelError(f"{weights_file}: coef {tensors['coef'].shape} and intercept "
                             f"{tensors['intercept'].shape} do not fit {len(self.themes)} themes × {n_features} "
                             f"features of {vocabulary_file.name}; {RETRAIN}")
        self._set_weights(tensors["coef"], tensors["intercept"])
        self.constant_scores = vocabulary["constant_scores"]
        self.context_weight = float(vocabulary.get("context_weight", 0.0))


def _read_vocabulary(path: Path, themes: list[str]) -> dict:
    try:
        vocabulary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} is unreadable ({err}); {RETRAIN}") from None
    problem = None
    if not isinstance(vocabulary, dict) or vocabulary.get("format") != FORMAT:
        problem = f"not a format-{FORMAT} vocabulary file"
    elif not all(isinstance(vocabulary.get(key), list) for key in ("char_ngrams", "word_ngrams")):
        problem = "'char_ngrams' and 'word_ngrams' must be lists"
    elif not all(isinstance(f, str) for f in vocabulary["char_ngrams"]):
        problem = "a character n-gram is not a string"
    elif "context_ngrams" in vocabulary and not (isinstance(vocabulary["context_ngrams"], list)
                                                 and _is_weight(vocabulary.get("context_weight"))):
        problem = "'context_ngrams' must be a list, with a 'context_weight' between 0 and 10"
    elif not (isinstance(vocabulary.get("constant_scores"), dict)
              and all(t in themes and v in (0, 1) for t, v in vocabulary["constant_scores"].items())):
        problem = "'constant_scores' must map theme ids to 0 or 1"
    if problem:
        raise ModelError(f"{path}: {problem}; {RETRAIN}")
    return vocabulary


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(path.read_bytes())
    except (OSError, SafetensorError) as err:
        raise ModelError(f"{path} is unreadable or truncated ({err}); {RETRAIN}") from None
    expected = {"chars.idf": 1, "words.idf": 1, "coef": 2, "intercept": 1,
                **({"context.idf": 1} if "context.idf" in tensors else {})}
    wrong = [name for name, ndim in expected.items() if name not in tensors or tensors[name].ndim != ndim
             or tensors[name].dtype != np.float64 or not np.isfinite(tensors[name]).all()]
    if wrong:
        raise ModelError(f"{path}: tensor '{wrong[0]}' is missing or not finite float64 of {expected[wrong[0]]} "
                         f"dimension(s); {RETRAIN}")
    return tensors


def _is_weight(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 10
