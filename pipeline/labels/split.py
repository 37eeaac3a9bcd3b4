"""The split stage: gold, training-corpus and silver labels → train/dev/test parquet splits.

Splits are by document (no document in two splits) and deterministic (a seeded hash of the doc_id).
Demo-corpus gold is split within each year — one test and one dev document per year where the year
has three or more — so every split spans the years. Silver (weak) labels are used for training only,
for paragraphs without gold, and never from a dev or test document.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import load_codebook
from pipeline.labels.gold import load_gold, load_training_corpus, match_gold, targets

log = logging.getLogger("pipeline.labels")
SPLITS = ("train", "dev", "test")


@dataclass
class SplitSettings:
    paragraphs: str = "data/interim/paragraphs.parquet"
    weak_labels: str = "data/processed/weak_labels.parquet"
    gold_dir: str = "data/annotations/gold"
    training_dir: str = "data/training"
    out_dir: str = "data/processed"
    dev_share: float = 0.15  # of training-corpus documents
    test_share: float = 0.15
    use_silver: bool = True
    silver_weight: float = 0.3  # a silver paragraph counts this much of a gold one in training
    seed: int = 13


def _rank(doc_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()


def assign_by_share(doc_ids, dev_share: float, test_share: float, seed: int) -> dict[str, str]:
    """Documents ordered by a seeded hash; the first test_share go to test, the next dev_share to dev."""
    ordered = sorted(set(doc_ids), key=lambda d: _rank(d, seed))
    n_test, n_dev = round(len(ordered) * test_share), round(len(ordered) * dev_share)
    return {d: "test" if i < n_test else "dev" if i < n_test + n_dev else "train" for i, d in enumerate(ordered)}


def assign_by_year(doc_years: dict[str, int | None], seed: int) -> dict[str, str]:
    """Per year: one test and one dev document when the year has ≥ 3 documents, the rest train."""
    by_year: dict = {}
    for doc_id, year in doc_years.items():
        by_year.setdefault(year, []).append(doc_id)
    out = {}
    for docs in by_year.values():
        ordered = sorted(docs, key=lambda d: _rank(d, seed))
        for i, doc_id in enumerate(ordered):
            out[doc_id] = ("test", "dev")[i] if len(ordered) >= 3 and i < 2 else "train"
    return out


def build_splits(settings: SplitSettings) -> dict[str, pd.DataFrame]:
    codebook = load_codebook()
    ids = codebook.ids
    paragraphs = pd.read_parquet(settings.paragraphs)
    paragraphs = paragraphs[paragraphs["kind"] == "body"]
    gold, _ = match_gold(load_gold(settings.gold_dir, codebook), paragraphs)
    frames = []

    if not gold.empty:
        demo = paragraphs.set_index("para_id").loc[gold["para_id"]].reset_index()
        demo = demo.assign(themes=gold["themes"].to_numpy(), primary=gold["primary"].to_numpy())
        doc_years = dict(zip(demo["doc_id"], demo["year"]))
        split_of = assign_by_year(doc_years, settings.seed)
        frames.append(_frame(demo.rename(columns={"para_id": "id"}), "gold_demo", split_of, ids,
                             targets(demo["themes"], ids)))
    else:
        split_of = {}

    training = load_training_corpus(settings.training_dir, codebook)
    if not training.empty:
        training_split = assign_by_share(training["doc_id"], settings.dev_share, settings.test_share,
                                         settings.seed)
        training = training.assign(heading_path=[[] for _ in range(len(training))], year=None)
        frames.append(_frame(training, "training", training_split, ids, targets(training["themes"], ids)))

    if settings.use_silver:
        weak = pd.read_parquet(settings.weak_labels)
        gold_ids = set(gold["para_id"]) if not gold.empty else set()
        held_out_docs = {d for d, s in split_of.items() if s != "train"}
        silver = weak[~weak["para_id"].isin(gold_ids) & ~weak["doc_id"].isin(held_out_docs)]
        silver = silver.merge(paragraphs[["para_id", "text", "heading_path"]], on="para_id")
        silver = silver.rename(columns={"para_id": "id"}).assign(primary=None)
        frames.append(_frame(silver, "silver", {d: "train" for d in silver["doc_id"]}, ids,
                             silver[ids].to_numpy(), weight=settings.silver_weight))

    if not frames:
        raise ValueError(f"no labelled data: no gold in {settings.gold_dir}, no training corpus in "
                         f"{settings.training_dir} and use_silver is false")
    everything = pd.concat(frames, ignore_index=True)
    return {name: everything[everything["split"] == name].drop(columns="split").reset_index(drop=True)
            for name in SPLITS}


def _frame(source: pd.DataFrame, origin: str, split_of: dict, ids: list[str], target: np.ndarray,
           weight: float = 1.0) -> pd.DataFrame:
    frame = pd.DataFrame({
        "id": source["id"].to_numpy(), "doc_id": source["doc_id"].to_numpy(), "text": source["text"].to_numpy(),
        "heading_path": [list(h) for h in source["heading_path"]],
        "year": pd.array(source["year"].to_numpy(), dtype="Int64"), "origin": origin,
        "genre": source["genre"].to_numpy() if "genre" in source else None,
        "primary": source["primary"].to_numpy(), "weight": weight,
        "split": [split_of[d] for d in source["doc_id"]],
    })
    for j, theme in enumerate(ids):
        frame[theme] = target[:, j]
    return frame


def run(settings: SplitSettings) -> dict[str, pd.DataFrame]:
    splits = build_splits(settings)
    report = {}
    for name, frame in splits.items():
        io.write_parquet(f"{settings.out_dir}/{name}.parquet", frame)
        report[name] = {"rows": len(frame), "documents": int(frame["doc_id"].nunique()),
                        "by_origin": frame["origin"].value_counts().sort_index().to_dict()}
    io.write_json(f"{settings.out_dir}/split_report.json", report)
    log.info("split: %s → %s/{train,dev,test}.parquet",
             ", ".join(f"{k} {v['rows']} rows / {v['documents']} docs" for k, v in report.items()),
             settings.out_dir)
    return splits
