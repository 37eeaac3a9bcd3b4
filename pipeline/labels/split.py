"""The split stage: real coded paragraphs, gold, the written training corpus and (opt-in) silver labels →
train/dev/test parquet splits.

Splits are by document (no document in two splits) and deterministic (seeded hashes). Real coded
paragraphs (data/training/real/) are split by publication date, so a held-out day takes every article
of that day with it; their dev rows tune thresholds and calibration and choose the shipped model, their
test rows give the headline numbers. Gold rows carry their document, year and heading path, so the training data — and so the shipped model —
never depends on the corpus in data/raw. Demo-corpus gold is split within each year — one test and one dev
document per year where the year has three or more. Silver (weak) labels are opt-in, training only,
never from a dev or test document, and never more rows than the coded data: the shipped model is an
instrument trained on the repository's coded data, not on the corpus it measures.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import load_codebook
from pipeline.config import Settings, SettingsError, setting
from pipeline.labels.gold import load_gold, load_real_corpus, load_training_corpus, match_gold, targets
from pipeline.text import frame_contexts

log = logging.getLogger("pipeline.labels")
SPLITS = ("train", "dev", "test")


@dataclass
class SplitSettings(Settings):
    paragraphs: str = "data/interim/paragraphs.parquet"
    weak_labels: str = "data/processed/weak_labels.parquet"
    gold_dir: str = "data/annotations/gold"
    training_dir: str = "data/training"
    real_dir: str = "data/training/real"  # hand-coded real paragraphs (source, date, doc_id per row)
    out_dir: str = "data/processed"
    dev_share: float = setting(0.15, ge=0, lt=1)  # of training-corpus documents
    test_share: float = setting(0.15, ge=0, lt=1)
    written_weight: float = setting(0.5, ge=0)  # a team-written passage counts this much of a real coded paragraph
    use_silver: bool = False  # opt-in: weak labels of the corpus's own paragraphs as extra training rows
    silver_weight: float = setting(0.3, ge=0)  # a silver paragraph counts this much of a gold one in training
    real_dev_share: float = setting(0.15, ge=0, lt=1)  # of real coded paragraphs' publication dates (split_of_date)
    real_test_share: float = setting(0.2, ge=0, lt=1)
    seed: int = 13

    def __post_init__(self):
        super().__post_init__()
        for dev, test in (("dev_share", "test_share"), ("real_dev_share", "real_test_share")):
            total = getattr(self, dev) + getattr(self, test)
            if total >= 1:
                raise SettingsError(dev, f"{dev} + {test} = {total:g} leaves nothing to train on",
                                    f"shares that add up to less than 1, e.g. {dev}: 0.15, {test}: 0.15")


def seeded_rank(doc_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()


def assign_by_share(doc_ids, dev_share: float, test_share: float, seed: int) -> dict[str, str]:
    """Documents ordered by a seeded hash; the first test_share go to test, the next dev_share to dev."""
    ordered = sorted(set(doc_ids), key=lambda d: seeded_rank(d, seed))
    n_test, n_dev = round(len(ordered) * test_share), round(len(ordered) * dev_share)
    return {d: "test" if i < n_test else "dev" if i < n_test + n_dev else "train" for i, d in enumerate(ordered)}


def split_of_date(date: str, dev_share: float, test_share: float, seed: int) -> str:
    """The split of every real paragraph published on `date` (a day, or a year for a yearly report).

    Holding out whole dates keeps all paragraphs of one article, and every article of one day's news,
    in one split, so test paragraphs never share a story with training ones; `pretrain` leaves these
    dates out of its corpus for the same reason."""
    bucket = int(seeded_rank(str(date), seed)[:8], 16) / 16**8
    return "test" if bucket < test_share else "dev" if bucket < test_share + dev_share else "train"


def split_of_documents(doc_ids, dates, dev_share: float, test_share: float, seed: int) -> dict[str, str]:
    """Each document's split from its dates. An article a newspaper archive files under two days goes to
    the most held-out split of its dates (test, then dev), so none of its paragraphs train a model that
    is measured on the others."""
    rank = {"train": 0, "dev": 1, "test": 2}
    split_of: dict[str, str] = {}
    for doc, date in zip(doc_ids, dates):
        split_of[doc] = max(split_of.get(doc, "train"), split_of_date(date, dev_share, test_share, seed),
                            key=rank.get)
    return split_of


def assign_by_year(doc_years: dict[str, int | None], seed: int) -> dict[str, str]:
    """Per year: one test and one dev document when the year has ≥ 3 documents, the rest train."""
    by_year: dict = {}
    for doc_id, year in doc_years.items():
        by_year.setdefault(year, []).append(doc_id)
    out = {}
    for docs in by_year.values():
        ordered = sorted(docs, key=lambda d: seeded_rank(d, seed))
        for i, doc_id in enumerate(ordered):
            out[doc_id] = ("test", "dev")[i] if len(ordered) >= 3 and i < 2 else "train"
    return out


def build_splits(settings: SplitSettings) -> dict[str, pd.DataFrame]:
    codebook = load_codebook()
    ids = codebook.ids
    gold = load_gold(settings.gold_dir, codebook)
    paragraphs = None  # the corpus's own paragraphs: read only for gold rows that don't carry their document, and silver
    if not gold.empty and ("doc_id" not in gold or gold["doc_id"].isna().any()):
        paragraphs = _body_paragraphs(settings)
        gold = _with_documents(gold, paragraphs)
    frames = []

    if not gold.empty:
        demo = gold if "heading_path" in gold else gold.assign(heading_path=None)
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
        frames.append(_frame(training, "training", training_split, ids, targets(training["themes"], ids),
                             weight=settings.written_weight))

    real = load_real_corpus(settings.real_dir, codebook)
    if not real.empty:
        real_split = split_of_documents(real["doc_id"], real["date"], settings.real_dev_share,
                                        settings.real_test_share, settings.seed)
        frames.append(_frame(real, "real", real_split, ids, targets(real["themes"], ids)))

    if settings.use_silver:
        paragraphs = _body_paragraphs(settings) if paragraphs is None else paragraphs
        frames.append(_silver(settings, paragraphs, gold, split_of, ids,
                              coded_rows=sum(len(f) for f in frames)))

    if not frames:
        raise ValueError(f"no labelled data: no gold in {settings.gold_dir}, no training corpus in "
                         f"{settings.training_dir} and use_silver is false")
    everything = pd.concat(frames, ignore_index=True)
    return {name: everything[everything["split"] == name].drop(columns="split").reset_index(drop=True)
            for name in SPLITS}


def _body_paragraphs(settings: SplitSettings) -> pd.DataFrame:
    paragraphs = pd.read_parquet(settings.paragraphs)
    return paragraphs[paragraphs["kind"] == "body"]


def _with_documents(gold: pd.DataFrame, paragraphs: pd.DataFrame) -> pd.DataFrame:
    """Gold rows without their document (e.g. from `annotate adjudicate`) take it from the paragraph they
    match (by para_id, else exact text); rows that carry it already are kept as they are."""
    carried = gold[gold["doc_id"].notna()] if "doc_id" in gold else gold.iloc[:0]
    matched, _ = match_gold(gold.drop(carried.index), paragraphs)
    located = paragraphs.set_index("para_id").loc[matched["para_id"], ["doc_id", "year", "heading_path"]]
    matched = matched.drop(columns=[c for c in ("doc_id", "year", "heading_path") if c in matched])
    return pd.concat([carried, pd.concat([matched.reset_index(drop=True), located.reset_index(drop=True)], axis=1)],
                     ignore_index=True)


def _silver(settings: SplitSettings, paragraphs: pd.DataFrame, gold: pd.DataFrame, split_of: dict,
            ids: list[str], coded_rows: int) -> pd.DataFrame:
    """Weak labels of paragraphs without gold, outside dev/test documents, at most `coded_rows` of them."""
    weak = pd.read_parquet(settings.weak_labels)
    gold_ids = set(gold["para_id"]) if not gold.empty else set()
    held_out_docs = {d for d, s in split_of.items() if s != "train"}
    silver = weak[~weak["para_id"].isin(gold_ids) & ~weak["doc_id"].isin(held_out_docs)]
    if len(silver) > coded_rows:  # silver is never the majority of training rows
        keep = sorted(silver["para_id"], key=lambda p: seeded_rank(p, settings.seed))[:coded_rows]
        log.info("split: silver capped at %d of %d rows (the coded rows' count)", coded_rows, len(silver))
        silver = silver[silver["para_id"].isin(set(keep))]
    silver = silver.merge(paragraphs[["para_id", "text", "heading_path"]], on="para_id")
    silver = silver.rename(columns={"para_id": "id"}).assign(primary=None)
    return _frame(silver, "silver", {d: "train" for d in silver["doc_id"]}, ids, silver[ids].to_numpy(),
                  weight=settings.silver_weight)


def _frame(source: pd.DataFrame, origin: str, split_of: dict, ids: list[str], target: np.ndarray,
           weight: float = 1.0) -> pd.DataFrame:
    heading_paths = [list(h) if isinstance(h, (list, tuple, np.ndarray)) else [] for h in source["heading_path"]]
    frame = pd.DataFrame({
        "id": source["id"].to_numpy(), "doc_id": source["doc_id"].to_numpy(), "text": source["text"].to_numpy(),
        "heading_path": heading_paths,
        "context": frame_contexts(pd.DataFrame({"title": source["title"].to_numpy() if "title" in source else None,
                                                "heading_path": heading_paths})),
        "year": pd.array(source["year"].to_numpy(), dtype="Int64"), "origin": origin,
        "genre": source["genre"].to_numpy() if "genre" in source else None,
        "source": source["source"].to_numpy() if "source" in source else None,
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
