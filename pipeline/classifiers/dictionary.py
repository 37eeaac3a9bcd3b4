"""The dictionary method: codebook keywords and patterns only (the method many political-science
papers use). A theme's score is the noisy-or of the weights of its cues found in the paragraph, with
passing mentions discounted; `fit` learns nothing but the per-theme thresholds on dev."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.classifiers.base import ThemeClassifier
from pipeline.labels.functions import WeakLabeler


class DictionaryClassifier(ThemeClassifier):
    method = "dictionary"

    def fit(self, texts, targets, dev_texts=None, dev_targets=None, weights=None, contexts=None, dev_contexts=None):
        self.info["train_rows"] = len(texts)
        if dev_texts:
            self.tune_thresholds(dev_texts, dev_targets)
        return self

    def predict_scores(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """Keywords of the paragraph alone: a title or heading naming a theme says nothing of the paragraph."""
        _, scores = WeakLabeler(self.codebook).label(list(texts), [[] for _ in texts])
        return scores

    def save_weights(self, directory: Path) -> None:
        """Nothing beyond model.json: the codebook (checked by its hash) is the model."""

    def load_weights(self, directory: Path) -> None:
        if self.info.get("trained_codebook_hash") not in (None, self.codebook.hash):
            self.info["note"] = "codebook changed since the thresholds were tuned"
