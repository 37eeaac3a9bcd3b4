"""`python -m pipeline distill`: the TF-IDF model teaches a small BERT on unlabeled real paragraphs.

Not a stage of the default DAG: it reads the real corpora's paragraph tables (which are not shipped) and
takes ~50 min on two cores. It writes the checkpoint that `bert.base_model` fine-tunes by default,
shipped in models/pretrained/. Why: on a CPU, masked-language-model pretraining cannot teach a small
encoder enough Chinese to help (docs/benchmarks.md), and 13k coded paragraphs are too few to train a
transformer from nothing. The teacher's scores on ~100k unlabeled paragraphs of the same archives are a
transfer set the student learns the themes' vocabulary from (knowledge distillation; self-training when
teacher and student are one model). `train_bert` then fine-tunes the student on the coded paragraphs
alone.

* Transfer set: body paragraphs of `paragraphs` whose documents lie in the real *train* split
  (`split_of_documents` with the split section's shares and seed: nothing published on a dev or test
  date), not coded already, of `min_chars`–`max_chars` characters, mostly Chinese, each text once. The
  teacher scores each with its context (title and headings). Kept: every paragraph with a theme scored
  at least `relevant_score`, and `negatives` drawn (seeded) from the rest.
* Targets: the teacher's calibrated probabilities, and the coded training rows with their own labels.
* Student: a small BERT of the `student` shape, on a vocabulary of the transfer texts' characters and (with
  `vocabulary: words`) their words, trained by `bert`'s loop (BertClassifier)
  for `max_steps`; real dev picks the best evaluation (once per pass over the transfer set).
* Export: fp16 safetensors, tokenizer, config (with the theme head), distill.json and MODEL_CARD.md.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.classifiers.base import load_model
from pipeline.classifiers.settings import DistillSettings, bert_settings
from pipeline.codebook import load_codebook
from pipeline.config import build_settings, load_params, stage_settings
from pipeline.labels.split import SplitSettings, split_of_documents
from pipeline.text import frame_contexts
from pipeline.train import real_rows

log = logging.getLogger("pipeline.distill")
CHINESE = re.compile(r"[\u4e00-\u9fff]")
PARAGRAPH_COLUMNS = ["doc_id", "kind", "text", "title", "heading_path", "date", "url"]


def distill_settings(params: dict | None, where: str = "params.yaml:distill") -> DistillSettings:
    return build_settings(DistillSettings, params, where)


def candidate_paragraphs(path: str, s: DistillSettings, split: SplitSettings, coded: set[str]) -> pd.DataFrame:
    """The body paragraphs of one paragraph table that the student may learn from (see the module doc).

    A document is keyed by its URL where it has one: a newspaper archive files some articles under two
    days, with a document id per day, and the article must go to the most held-out split of the two."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such paragraph table: build the real corpora's with "
                                "`python examples/real/run.py` (docs/real-corpora.md) or fix distill.paragraphs")
    present = set(pq.read_schema(path).names)
    missing = [c for c in PARAGRAPH_COLUMNS if c not in present and c != "url"]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}: give distill.paragraphs the segment "
                         "stage's paragraphs.parquet of a corpus")
    table = pd.read_parquet(path, columns=[c for c in PARAGRAPH_COLUMNS if c in present])
    key = table["url"].fillna(table["doc_id"]) if "url" in table else table["doc_id"]
    split_of = split_of_documents(key, table["date"].astype(str), split.real_dev_share, split.real_test_share,
                                  split.seed)
    keep = (key.map(split_of) == "train") & (table["kind"] == "body")
    keep &= table["text"].str.len().between(s.min_chars, s.max_chars) & ~table["text"].isin(coded)
    table = table[keep.to_numpy()]
    chinese = table["text"].map(lambda t: len(CHINESE.findall(t)) / len(t))
    return table[(chinese >= s.min_chinese_share).to_numpy()].assign(table=path)


def transfer_set(s: DistillSettings, split: SplitSettings, teacher) -> pd.DataFrame:
    """Candidate paragraphs of every table, scored by the teacher: the relevant ones and the drawn negatives,
    in a seeded order, with one column per theme (the teacher's calibrated probability)."""
    coded = set(pd.read_parquet(Path(s.splits_dir) / "train.parquet", columns=["text"])["text"])
    for name in ("dev", "test"):
        coded |= set(pd.read_parquet(Path(s.splits_dir) / f"{name}.parquet", columns=["text"])["text"])
    tables = [candidate_paragraphs(path, s, split, coded) for path in s.paragraphs]
    pool = pd.concat(tables, ignore_index=True).drop_duplicates("text").reset_index(drop=True)
    scores = teacher.theme_scores(pool["text"].tolist(), frame_contexts(pool))
    pool = pool.drop(columns=["heading_path"]).assign(**{t: scores[:, j].astype(np.float32)
                                                         for j, t in enumerate(teacher.themes)})
    relevant = scores.max(axis=1) >= s.relevant_score
    rest = np.flatnonzero(~relevant)
    drawn = np.random.default_rng(s.seed).choice(rest, size=min(s.negatives, len(rest)), replace=False)
    chosen = np.sort(np.concatenate([np.flatnonzero(relevant), drawn]))
    order = np.random.default_rng(s.seed + 1).permutation(len(chosen))
    log.info("distill: %d candidate paragraphs, %d relevant, %d negatives drawn", len(pool), relevant.sum(),
             len(drawn))
    return pool.iloc[chosen[order]].reset_index(drop=True)


def run(s: DistillSettings, params_path: str = "params.yaml") -> dict:
    from pipeline.classifiers.bert import BertClassifier

    started = time.perf_counter()
    split = stage_settings("split", SplitSettings, params_path)
    bert = replace(bert_settings(load_params(params_path).get("bert"), f"{params_path}:bert"),
                   base_model="scratch", scratch=s.student, max_steps=s.max_steps, batch_size=s.batch_size,
                   learning_rate=s.learning_rate, seed=s.seed, live_dir=s.live_dir,
                   checkpoint_dir=s.checkpoint_dir, early_stopping_patience=0)
    teacher = load_model(s.teacher)  # refuses a model whose themes are not the codebook's
    codebook = load_codebook()
    transfer = transfer_set(s, split, teacher)
    train = pd.read_parquet(Path(s.splits_dir) / "train.parquet")
    dev = pd.read_parquet(Path(s.splits_dir) / "dev.parquet")
    real_dev = real_rows(dev)
    themes = codebook.ids
    student = BertClassifier(codebook, asdict(bert)).fit(
        transfer["text"].tolist() + train["text"].tolist(),
        np.vstack([transfer[themes].to_numpy(np.float32), train[themes].to_numpy(np.float32)]),
        real_dev["text"].tolist(), real_dev[themes].to_numpy(),
        weights=np.concatenate([np.ones(len(transfer)), train["weight"].to_numpy()]))
    stats = {
        "name": s.name, "settings": asdict(s), "student": asdict(bert.scratch),
        "teacher": {"path": s.teacher, "model_json_sha256": _sha256(Path(s.teacher) / "model.json"),
                    "dev": teacher.info.get("metrics", {}).get("dev", {}).get("macro_f1")},
        "transfer": {"paragraphs": len(transfer), "coded_rows": len(train),
                     "by_table": transfer["table"].value_counts().sort_index().to_dict(),
                     "mean_teacher_score": {t: round(float(transfer[t].mean()), 4) for t in themes}},
        "training": student.info["training"], "parameters": student.model.num_parameters(),
        "split": {"real_dev_share": split.real_dev_share, "real_test_share": split.real_test_share,
                  "seed": split.seed},
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    export(student, stats, Path(s.out_dir))
    return stats


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def export(student, stats: dict, out: Path) -> None:
    """fp16 weights with the theme head, tokenizer, distill.json and MODEL_CARD.md, swapped in whole."""
    with io.replaced_dir(out) as tmp:
        student.model.to("cpu").half().save_pretrained(tmp)
        student.tokenizer.save_pretrained(tmp)
        stats["size_mb"] = round(sum(f.stat().st_size for f in tmp.iterdir()) / 2**20, 2)
        io.write_json(tmp / "distill.json", stats)
        io.write_text(tmp / "MODEL_CARD.md", model_card(stats, student.model.config))
    log.info("distill: %d steps on %d paragraphs in %.0f s, real dev macro-F1 %s → %s (%.1f MB)",
             stats["training"]["steps"], stats["transfer"]["paragraphs"], stats["wall_time_s"],
             stats["training"]["best_dev_macro_f1"], out, stats["size_mb"])


def model_card(stats: dict, config) -> str:
    s, t, training = stats["settings"], stats["transfer"], stats["training"]
    tables = "\n".join(f"| `{name}` | {n:,} |" for name, n in t["by_table"].items())
    teacher_dev = stats["teacher"]["dev"]
    layers, hidden, heads = config.num_hidden_layers, config.hidden_size, config.num_attention_heads
    pieces = "words and characters" if stats["student"].get("vocabulary") == "words" else "characters"
    return f"""# {stats['name']}

A small Chinese BERT ({layers} layers, hidden {hidden}, {heads} heads, a {config.vocab_size:,}-token vocabulary
of {pieces}, {stats['parameters'] / 1e6:.2f}M parameters; fp16 safetensors,
{stats['size_mb']} MB) with a nine-theme head, taught by the TF-IDF model `{stats['teacher']['path']}` (real dev
macro-F1 {teacher_dev if teacher_dev is None else round(teacher_dev, 3)}) on unlabeled real paragraphs by
`python -m pipeline distill` (pipeline/distill.py). It is `bert.base_model`'s default: `train_bert`
fine-tunes it on the coded paragraphs.

## Data
{t['paragraphs']:,} unlabeled paragraphs (every one the teacher gave some theme ≥ {s['relevant_score']}, and
{s['negatives']:,} drawn from the rest), each with the teacher's calibrated probability per theme, plus the
{t['coded_rows']:,} coded training rows with their labels.

**Only documents of the real train split:** none published on a date that the coded data holds out for
dev or test (`split_of_documents`, shares {stats['split']['real_dev_share']} / {stats['split']['real_test_share']},
seed {stats['split']['seed']}), and no paragraph that is coded. The paragraphs themselves are not shipped
(the texts belong to their publishers).

| paragraph table | paragraphs kept |
|---|---|
{tables}

## Training
BCE on the soft targets with `bert`'s training loop: {training['steps']:,} steps of batch {s['batch_size']}, AdamW lr
{s['learning_rate']}, seed {s['seed']}, {training['precision']} on {training['device']}, \
{stats['wall_time_s'] / 60:.0f} min.
Real dev is scored after each pass over the data; the best pass is kept (real dev macro-F1
{round(training['best_dev_macro_f1'], 3)}, thresholds tuned on dev).

## Limitations
The student learns the teacher's view of the themes, errors included; fine-tuning on the coded paragraphs
is what corrects it. Rebuild it when the teacher or the coded data change much (README, "Distilling the
student").
"""
