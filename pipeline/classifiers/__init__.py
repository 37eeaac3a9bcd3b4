"""Theme classifiers: dictionary, TF-IDF baseline, fine-tuned BERT — one interface (see base.py)."""
from __future__ import annotations

import importlib

METHODS = {  # method name → class; imported on demand so `dictionary` never pays for torch
    "dictionary": "pipeline.classifiers.dictionary:DictionaryClassifier",
    "baseline": "pipeline.classifiers.tfidf:TfidfClassifier",
    "bert": "pipeline.classifiers.bert:BertClassifier",
}


def classifier_class(method: str):
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; known: {sorted(METHODS)}")
    module, _, name = METHODS[method].partition(":")
    return getattr(importlib.import_module(module), name)
