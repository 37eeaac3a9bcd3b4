"""The TF-IDF baseline: character n-grams + jieba word n-grams, one logistic regression per theme
(one-vs-rest, class-balanced), per-theme thresholds tuned on dev. Silver targets (probabilities) are
thresholded at 0.5 and enter with their row weight scaled by their confidence."""
from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from pipeline.classifiers.base import ThemeClassifier
from pipeline.text import words

DEFAULTS = {"char_ngrams": [1, 3], "word_ngrams": [1, 2], "min_df": 2, "max_features": 200_000,
            "C": 1.0, "threshold_ceiling": 0.4, "seed": 0}


class TfidfClassifier(ThemeClassifier):
    method = "baseline"

    def __init__(self, codebook, params=None):
        super().__init__(codebook, {**DEFAULTS, **(params or {})})
        self.features: FeatureUnion | None = None
        self.models: list[LogisticRegression | float] = []  # a constant where a theme has one class

    def _vectorizer(self) -> FeatureUnion:
        p = self.params
        return FeatureUnion([
            ("chars", TfidfVectorizer(analyzer="char", ngram_range=tuple(p["char_ngrams"]), min_df=p["min_df"],
                                      max_features=p["max_features"], sublinear_tf=True)),
            ("words", TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False,
                                      ngram_range=tuple(p["word_ngrams"]), min_df=p["min_df"],
                                      sublinear_tf=True)),
        ])

    def fit(self, texts, targets, dev_texts=None, dev_targets=None, weights=None):
        weights = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=float)
        self.features = self._vectorizer()
        x = self.features.fit_transform(texts)
        self.models = []
        for j in range(targets.shape[1]):
            y = (targets[:, j] >= 0.5).astype(int)
            confidence = np.where(y == 1, targets[:, j], 1 - targets[:, j])
            if y.min() == y.max():
                self.models.append(float(y[0]))
                continue
            model = LogisticRegression(C=self.params["C"], class_weight="balanced", max_iter=2000,
                                       random_state=self.params["seed"])
            model.fit(x, y, sample_weight=weights * confidence)
            self.models.append(model)
        self.info.update({"train_rows": len(texts), "features": int(x.shape[1])})
        if dev_texts:
            self.tune_thresholds(dev_texts, dev_targets)
        return self

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        if self.features is None:
            raise RuntimeError("the baseline model is not trained: call fit() or load a saved model")
        x = self.features.transform(list(texts))
        columns = [np.full(x.shape[0], m) if isinstance(m, float) else m.predict_proba(x)[:, 1]
                   for m in self.models]
        return np.column_stack(columns)

    def save_weights(self, directory: Path) -> None:
        for _, vectorizer in self.features.transformer_list:
            # scikit-learn caches id(stop_words) here to warn once; a memory address differs between
            # processes, and would make identical models differ byte for byte
            vars(vectorizer).pop("_stop_words_id", None)
        joblib.dump({"features": self.features, "models": self.models}, directory / "tfidf_lr.joblib")

    def load_weights(self, directory: Path) -> None:
        state = joblib.load(directory / "tfidf_lr.joblib")
        self.features, self.models = state["features"], state["models"]
