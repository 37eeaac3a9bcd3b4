"""Optional `pretrain` stage: masked-language-model pretraining of the scratch BERT on the corpus.

A BERT trained from scratch on ~2,000 labelled paragraphs learns what its characters mean from those
alone. Pretraining it first as a masked language model on every body paragraph of the corpus (plus
the training texts, so their characters are in the vocabulary) uses the unlabelled text too.
Fine-tune from the result with `bert.pretrain_dir: models/pretrained_scratch`.

The architecture is `bert.scratch` (one definition for both stages); the vocabulary is built from
the texts pretrained on. Texts are cut into non-overlapping chunks of `max_length` tokens; a share
(`holdout`) of them is held out and its MLM loss (and perplexity) logged each epoch.
"""
from __future__ import annotations

import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.classifiers.bert import (PAD_MULTIPLE, ScratchSettings, TrainLoopSettings,
                                       build_char_tokenizer, encode_chunks, live_callbacks,
                                       remove_checkpoints, resolve_precision, scratch_config,
                                       seed_everything, trainer_arguments)

log = logging.getLogger(__name__)


@dataclass
class PretrainSettings(TrainLoopSettings):
    paragraphs: str = "data/interim/paragraphs.parquet"  # rows with kind == "body" are used
    train_split: str = "data/processed/train.parquet"  # its texts are added when it exists
    out_dir: str = "models/pretrained_scratch"
    max_length: int = 128
    learning_rate: float = 1e-3
    epochs: float = 3
    batch_size: int = 64
    mlm_probability: float = 0.15
    holdout: float = 0.05  # share of chunks kept out of training for the eval loss
    live_dir: str = "dvclive/pretrain"
    checkpoint_dir: str = "models/.pretrain_checkpoints"


def corpus_texts(settings: PretrainSettings) -> list[str]:
    """Body paragraphs of the corpus, then training texts, each distinct text once."""
    frames = [pd.read_parquet(settings.paragraphs, columns=["text", "kind"]).query("kind == 'body'")]
    if Path(settings.train_split).exists():
        frames.append(pd.read_parquet(settings.train_split, columns=["text"]))
    texts = pd.concat(frames)["text"].dropna().astype(str)
    return list(dict.fromkeys(t for t in texts if t.strip()))


def run(settings: PretrainSettings, scratch: ScratchSettings | None = None) -> dict:
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, Trainer

    scratch = scratch or ScratchSettings()
    texts = corpus_texts(settings)
    if not texts:
        raise ValueError(f"pretrain: no body paragraphs in '{settings.paragraphs}'")
    precision = resolve_precision(settings.precision)
    seed_everything(settings.seed)
    tokenizer = build_char_tokenizer(texts, scratch)
    model = AutoModelForMaskedLM.from_config(scratch_config(scratch, len(tokenizer)), attn_implementation="sdpa")
    chunks, _ = encode_chunks(tokenizer, texts, settings.max_length, stride=0)
    order = np.random.default_rng(settings.seed).permutation(len(chunks))
    n_eval = int(len(chunks) * settings.holdout)
    eval_chunks = [chunks[i] for i in order[:n_eval]]
    train_chunks = [chunks[i] for i in order[n_eval:]]

    args = trainer_arguments(settings, precision, has_eval=bool(eval_chunks))
    trainer = Trainer(model=model, args=args, train_dataset=train_chunks, eval_dataset=eval_chunks or None,
                      processing_class=tokenizer, callbacks=live_callbacks(settings.live_dir, args),
                      data_collator=DataCollatorForLanguageModeling(
                          tokenizer, mlm_probability=settings.mlm_probability, pad_to_multiple_of=PAD_MULTIPLE))
    result = trainer.train()
    eval_loss = trainer.evaluate()["eval_loss"] if eval_chunks else None
    remove_checkpoints(trainer)
    stats = {"texts": len(texts), "train_chunks": len(train_chunks), "eval_chunks": len(eval_chunks),
             "vocab_size": len(tokenizer), "parameters": model.num_parameters(), "precision": precision,
             "scratch": asdict(scratch), "train_loss": round(result.training_loss, 4),
             "eval_loss": round(eval_loss, 4) if eval_loss is not None else None,
             "perplexity": round(math.exp(eval_loss), 2) if eval_loss is not None else None}
    if args.process_index == 0:
        _save(trainer.model, tokenizer, stats, Path(settings.out_dir))
    log.info("pretrain: %d texts, %d chunks, vocab %d, %.1fs → %s (eval perplexity %s)", len(texts),
             len(chunks), len(tokenizer), result.metrics["train_runtime"], settings.out_dir, stats["perplexity"])
    return stats


def _save(model, tokenizer, stats: dict, out_dir: Path) -> None:
    """Write the model beside `out_dir`, then swap it in: an interrupted run keeps the last good one."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    io.write_json(tmp / "pretrain.json", stats)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
