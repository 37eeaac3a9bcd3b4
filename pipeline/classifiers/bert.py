"""Fine-tuned BERT theme classifier (method "bert"): transformers' sequence classifier, multi-label
(one sigmoid per theme, BCE loss, so silver probabilities train as soft targets), trained by `Trainer`.

Design:

* Base model (`resolve_base_model`). `base_model: scratch` builds a small BERT whose vocabulary is
  every character of the training texts (a character WordPiece vocab: Chinese BERTs tokenise Chinese
  per character anyway), or loads `pretrain_dir` (the `pretrain` stage's MLM model) when that is set
  and present. A local directory is loaded as a Hugging Face checkpoint. A hub name is looked up in
  the local HF cache, then on the hub unless `HF_HUB_OFFLINE` is set; failing both, a `ModelError`
  says what to set, at once rather than after the hub's retries. The model actually used (name,
  kind, path, parameter count) is recorded in `info["base_model"]`, hence in model.json.
* Long paragraphs. Texts are cut into chunks of `max_length` tokens overlapping by `stride`.
  Training uses every chunk with its paragraph's targets: paragraphs are at most segment.max_chars
  long, so few have two chunks, and a theme stated anywhere in a paragraph is a theme of it.
  Scoring max-pools chunk logits per paragraph (a theme counts if any chunk carries it; a mean would
  dilute a theme stated in one chunk of a long paragraph), then applies the sigmoid. Early stopping
  (and the best epoch kept) watches dev macro-F1 computed the same way, per paragraph, at thresholds
  tuned on dev as the saved model's are.
* Precision. `auto`: bf16 on CUDA where supported, else fp16 on CUDA, fp32 on CPU; TF32 matmuls
  on CUDA. Scoring autocasts to the same dtype on CUDA and pools in fp32.
* Devices. Nothing here names a device: Trainer (accelerate) places the model, so training runs
  unchanged under `accelerate launch` / `torchrun`; only the main process writes dvclive curves.
* Determinism. On CPU, the same data and seed give the same scores (seeded RNGs, deterministic
  algorithms); on GPU runs agree closely but not bit for bit.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm.auto import tqdm
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          BertTokenizerFast, DataCollatorWithPadding, EarlyStoppingCallback, Trainer,
                          TrainingArguments, set_seed)
from transformers.integrations import DVCLiveCallback

from pipeline.classifiers.base import ModelError, ThemeClassifier, tune_thresholds
from pipeline.codebook import Codebook
from pipeline.config import build_settings

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_MULTIPLE = 8  # padded lengths in multiples of 8 keep GPU tensor cores busy; costs ~nothing on CPU


@dataclass
class ScratchSettings:
    """Architecture of a BERT trained from scratch (also the `pretrain` stage's model)."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    dropout: float = 0.1
    vocab_min_freq: int = 1  # characters seen fewer times map to [UNK]
    vocab_max_size: int = 8000  # most frequent characters kept, special tokens included


@dataclass
class TrainLoopSettings:
    """What any Trainer run here takes (fine-tuning and MLM pretraining)."""

    max_length: int = 256  # tokens per chunk, [CLS] and [SEP] included
    learning_rate: float = 5e-4  # right for scratch; use ~3e-5 for a pretrained checkpoint
    epochs: float = 8
    batch_size: int = 16  # per device; small batches give the scratch model the steps it needs
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    torch_compile: bool = False
    eval_batch_size: int = 128  # chunks per batch when evaluating and scoring
    live_dir: str = ""  # dvclive curves; empty: none
    checkpoint_dir: str = "models/.checkpoints"  # Trainer's epoch checkpoints, removed after training


@dataclass
class BertSettings(TrainLoopSettings):
    live_dir: str = "dvclive/train_bert"
    checkpoint_dir: str = "models/.bert_checkpoints"
    base_model: str = "scratch"  # scratch | a local HF checkpoint directory | a hub name (cache only offline)
    pretrain_dir: str = ""  # with scratch: start from this MLM-pretrained model when it exists
    stride: int = 64  # tokens shared by consecutive chunks of a long paragraph
    early_stopping_patience: int = 3  # epochs without a better dev macro-F1; 0: train all epochs
    threshold_ceiling: float = 0.9  # highest per-theme threshold dev tuning may pick (base.tune_thresholds)
    scratch: ScratchSettings = field(default_factory=ScratchSettings)


def bert_settings(params: dict | None, where: str = "params.yaml:bert") -> BertSettings:
    settings = build_settings(BertSettings, params, where)
    if settings.precision not in PRECISIONS:
        raise ValueError(f"{where}.precision: '{settings.precision}' is not one of {list(PRECISIONS)}")
    if not 0 <= settings.stride < settings.max_length - 2:
        raise ValueError(f"{where}.stride: {settings.stride} must be below max_length - 2 "
                         f"({settings.max_length - 2} tokens of text per chunk)")
    return settings


# --- base model resolution ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSource:
    name: str  # as configured
    kind: str  # scratch | pretrained_scratch | local | hub_cache | hub
    path: str | None  # the directory loaded (None: built in memory, or still to be downloaded)


def _hub_offline() -> bool:
    # Read at call time: huggingface_hub's own flag is frozen when it is first imported.
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return constants.HF_HUB_OFFLINE or env in ("1", "ON", "YES", "TRUE")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host takes a connection: asked first because the hub client, offline, retries
    for ~20 s before it gives up. Behind a proxy the client is left to find out."""
    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
    except OSError:
        return False
    return True


def _cached_snapshot(name: str) -> str | None:
    """The HF-cache directory holding `name`'s config.json, or None (never touches the network)."""
    from transformers.utils import CONFIG_NAME, cached_file

    try:
        path = cached_file(name, CONFIG_NAME, local_files_only=True,
                           _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):  # ValueError: not a valid repo id
        return None
    return str(Path(path).parent) if path else None


def _looks_like_path(name: str) -> bool:
    """True for what can only be a path; hub names are 'name' or 'owner/name'."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def resolve_base_model(base_model: str, pretrain_dir: str = "") -> ModelSource:
    """Where `base_model` comes from; a `ModelError` (within seconds) if it can't be had."""
    if base_model == "scratch":
        if pretrain_dir and (Path(pretrain_dir) / "config.json").is_file():
            return ModelSource("scratch", "pretrained_scratch", pretrain_dir)
        if pretrain_dir:
            log.warning("bert: pretrain_dir '%s' has no model (run the pretrain stage); training from "
                        "scratch without pretraining", pretrain_dir)
        return ModelSource("scratch", "scratch", None)
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"base model directory '{base_model}' is not a Hugging Face checkpoint (no "
                             "config.json): point bert.base_model at a directory saved by save_pretrained")
        return ModelSource(base_model, "local", str(local))
    if _looks_like_path(base_model):
        raise ModelError(f"base model directory '{base_model}' does not exist: fix bert.base_model "
                         "(a local Hugging Face checkpoint, a hub name, or 'scratch')")
    cached = _cached_snapshot(base_model)
    if cached:
        return ModelSource(base_model, "hub_cache", cached)
    offline = "HF_HUB_OFFLINE is set" if _hub_offline() else None if _hub_reachable() else "no connection"
    if offline:
        raise ModelError(f"model '{base_model}' not found locally and the hub is unreachable ({offline}): "
                         "set bert.base_model to a local directory (a Hugging Face checkpoint) or to 'scratch'")
    return ModelSource(base_model, "hub", None)


def build_char_tokenizer(texts: list[str], scratch: ScratchSettings) -> BertTokenizerFast:
    """A BERT WordPiece tokenizer whose vocabulary is the characters of `texts`.

    Characters are counted after BERT's own normalisation and pre-tokenisation, so the vocab holds
    exactly what the tokenizer will look up: a word's first character, and '##c' for the characters
    inside a non-Chinese word (Latin letters, digits), which WordPiece then spells out.
    """
    probe = BertTokenizerFast()
    normalizer, pre = probe.backend_tokenizer.normalizer, probe.backend_tokenizer.pre_tokenizer
    counts: Counter[str] = Counter()
    for text in texts:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word[0]] += 1
            counts.update("##" + c for c in word[1:])
    ranked = sorted((c for c, n in counts.items() if n >= scratch.vocab_min_freq),
                    key=lambda c: (-counts[c], c))  # frequency, then character: deterministic
    tokens = list(SPECIAL_TOKENS) + ranked[:max(0, scratch.vocab_max_size - len(SPECIAL_TOKENS))]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})


def scratch_config(scratch: ScratchSettings, vocab_size: int, **extra) -> BertConfig:
    # Weights drawn with std 1/sqrt(hidden) rather than BERT's 0.02, which suits hidden sizes of 768+:
    # at 128 it starves the signal and training from scratch stalls (measured on the gold paragraphs:
    # dev macro-F1 0.15 against 0.61 after 600 steps).
    return BertConfig(vocab_size=vocab_size, hidden_size=scratch.hidden_size,
                      initializer_range=scratch.hidden_size ** -0.5,
                      num_hidden_layers=scratch.num_layers, num_attention_heads=scratch.num_heads,
                      intermediate_size=scratch.intermediate_size,
                      max_position_embeddings=scratch.max_position_embeddings,
                      hidden_dropout_prob=scratch.dropout, attention_probs_dropout_prob=scratch.dropout,
                      **extra)


def build_model(settings: BertSettings, texts: list[str], themes: list[str]):
    """(model, tokenizer, info) for fine-tuning: the resolved base model with a fresh theme head."""
    source = resolve_base_model(settings.base_model, settings.pretrain_dir)
    labels = dict(num_labels=len(themes), id2label=dict(enumerate(themes)),
                  label2id={t: i for i, t in enumerate(themes)}, problem_type="multi_label_classification")
    if source.kind == "scratch":
        tokenizer = build_char_tokenizer(texts, settings.scratch)
        config = scratch_config(settings.scratch, len(tokenizer), **labels)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    else:
        where = source.path or source.name
        local_only = source.kind != "hub"
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
            # ignore_mismatched_sizes: a checkpoint fine-tuned for other labels still gives its encoder
            model = AutoModelForSequenceClassification.from_pretrained(
                where, local_files_only=local_only, attn_implementation="sdpa",
                ignore_mismatched_sizes=True, **labels)
        except (OSError, ValueError) as err:
            if source.kind == "hub":
                raise ModelError(f"model '{source.name}' not found locally nor fetched from the hub "
                                 f"({type(err).__name__}: {err}): set bert.base_model to a local directory "
                                 "(a Hugging Face checkpoint) or to 'scratch'") from None
            raise ModelError(f"cannot load base model '{source.name}' from '{where}': {err}") from None
        source = ModelSource(source.name, source.kind, source.path or _cached_snapshot(source.name))
    if not tokenizer.is_fast:
        raise ModelError(f"base model '{source.name}' has no fast tokenizer (tokenizer.json), which "
                         "chunking long paragraphs needs")
    if settings.max_length > model.config.max_position_embeddings:
        raise ModelError(f"bert.max_length {settings.max_length} exceeds the model's "
                         f"{model.config.max_position_embeddings} positions: lower it")
    info = {**asdict(source), "parameters": model.num_parameters(), "vocab_size": len(tokenizer)}
    return model, tokenizer, info


# --- chunks, pooling, metrics ----------------------------------------------------------------------

def encode_chunks(tokenizer, texts: list[str], max_length: int, stride: int) -> tuple[list[dict], np.ndarray]:
    """Chunks of every text (lists of ids, unpadded) and, per chunk, the index of its text."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, stride=stride,
                    return_overflowing_tokens=True)
    mapping = np.asarray(enc.pop("overflow_to_sample_mapping"), dtype=np.int64)
    keys = list(enc.keys())
    chunks = [{k: enc[k][i] for k in keys} for i in range(len(mapping))]
    return chunks, mapping


def pool_max(chunk_logits: np.ndarray, chunk_to_text: np.ndarray, n_texts: int) -> np.ndarray:
    """Per-text maximum of its chunks' logits (every text has at least one chunk)."""
    pooled = np.full((n_texts, chunk_logits.shape[1]), -np.inf, dtype=np.float32)
    np.maximum.at(pooled, chunk_to_text, chunk_logits.astype(np.float32))
    return pooled


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def macro_f1(scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray) -> float:
    """Macro-F1 over the themes that have a positive in `targets` (others have no defined F1)."""
    truth = targets >= 0.5
    present = np.flatnonzero(truth.any(axis=0))
    if not len(present):
        return 0.0
    return float(f1_score(truth[:, present], (scores >= thresholds)[:, present], average="macro",
                          zero_division=0))


# --- Trainer plumbing (shared with pipeline.pretrain) ------------------------------------------------

def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def seed_everything(seed: int) -> None:
    set_seed(seed)
    if not torch.cuda.is_available():
        # warn_only: the few ops without a deterministic kernel warn instead of failing
        torch.use_deterministic_algorithms(True, warn_only=True)


def trainer_arguments(s: TrainLoopSettings, precision: str, has_eval: bool, best_metric: str | None = None,
                      **overrides) -> TrainingArguments:
    """TrainingArguments from settings: per-epoch evaluation when there is dev data, and per-epoch
    checkpoints (model only) when `best_metric` picks the best epoch to keep."""
    from transformers.utils import is_torch_tf32_available

    keep_best = has_eval and best_metric is not None
    return TrainingArguments(
        output_dir=s.checkpoint_dir, num_train_epochs=s.epochs, learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size, per_device_eval_batch_size=s.eval_batch_size,
        gradient_accumulation_steps=s.grad_accum, warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay,
        seed=s.seed, bf16=precision == "bf16", fp16=precision == "fp16",
        tf32=True if torch.cuda.is_available() and is_torch_tf32_available() else None,
        torch_compile=s.torch_compile, train_sampling_strategy="group_by_length",
        eval_strategy="epoch" if has_eval else "no", save_strategy="epoch" if keep_best else "no",
        save_only_model=True, save_total_limit=1, load_best_model_at_end=keep_best,
        metric_for_best_model=best_metric if keep_best else None, greater_is_better=True if keep_best else None,
        logging_strategy="steps", logging_steps=0.02, report_to="none",
        ddp_find_unused_parameters=False,  # every parameter gets a gradient; the search costs time
        **overrides,
    )


class WeightedBCETrainer(Trainer):
    """Trainer whose loss is BCE against soft targets, each chunk weighted by its paragraph's row
    weight (silver rows count less than gold): a weighted mean over the batch."""

    loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides it by the accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        weight, labels = inputs.pop("weight"), inputs.pop("labels")
        outputs = model(**inputs)
        per_chunk = F.binary_cross_entropy_with_logits(outputs.logits.float(), labels.float(),
                                                       reduction="none").mean(dim=1)
        loss = (per_chunk * weight).sum() / weight.sum().clamp_min(1e-8)  # a batch of zero weights: loss 0
        return (loss, outputs) if return_outputs else loss


class StepDVCLiveCallback(DVCLiveCallback):
    """DVCLiveCallback whose step is the optimizer step (the stock one counts log calls, which
    evaluations advance too, so train and eval curves would not share an x axis), and which leaves out
    timings, so that the same data and seed give the same DVC metrics."""

    TIMINGS = ("runtime", "_per_second")

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.live.step = state.global_step
        logs = {k: v for k, v in (logs or {}).items() if not k.endswith(self.TIMINGS)}
        super().on_log(args, state, control, logs=logs, **kwargs)


def live_callbacks(live_dir: str, args: TrainingArguments) -> list:
    """A dvclive logger for the training curves, on the main process only."""
    if not live_dir or args.process_index != 0:
        return []
    from dvclive import Live

    # The stage's dvc.yaml declares the plots; dvclive must not write its own dvc.yaml or experiments.
    return [StepDVCLiveCallback(live=Live(dir=live_dir, save_dvc_exp=False, dvcyaml=False))]


def remove_checkpoints(trainer: Trainer) -> None:
    trainer.accelerator.wait_for_everyone()  # other processes may still be loading the best checkpoint
    if trainer.args.process_index == 0:
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)


# --- the classifier ----------------------------------------------------------------------------------

class BertClassifier(ThemeClassifier):
    method = "bert"

    def __init__(self, codebook: Codebook, params: dict | None = None):
        super().__init__(codebook, params)
        self.settings = bert_settings(self.params)
        self.model = None
        self.tokenizer = None

    def fit(self, texts, targets, dev_texts=None, dev_targets=None, weights=None) -> "BertClassifier":
        s = self.settings
        precision = resolve_precision(s.precision)
        seed_everything(s.seed)  # before the model is built: the fresh weights are seeded too
        self.model, self.tokenizer, base_info = build_model(s, list(texts), self.themes)
        train = self._labelled_chunks(texts, targets, weights)
        has_dev = bool(dev_texts)
        args = trainer_arguments(s, precision, has_dev, best_metric="macro_f1" if has_dev else None,
                                 remove_unused_columns=False)  # keep each chunk's "weight" for the loss
        callbacks = live_callbacks(s.live_dir, args)
        if has_dev and s.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=s.early_stopping_patience))

        def dev_metrics(_chunk_predictions) -> dict:
            # Scored per paragraph by the scoring path itself: Trainer's own predictions are per chunk,
            # in an order its length-grouping sampler shuffles. Thresholds are tuned on dev, as the
            # saved model's are: at a fixed 0.5 a young model that predicts no theme scores 0 for
            # epochs, and early stopping would end training there.
            scores, truth = self._score(list(dev_texts), progress=False), np.asarray(dev_targets)
            thresholds = tune_thresholds(scores, truth >= 0.5, ceiling=s.threshold_ceiling)
            return {"macro_f1": macro_f1(scores, truth, thresholds)}

        trainer = WeightedBCETrainer(model=self.model, args=args, train_dataset=train,
                          eval_dataset=self._labelled_chunks(dev_texts, dev_targets) if has_dev else None,
                          processing_class=self.tokenizer, compute_metrics=dev_metrics if has_dev else None,
                          data_collator=DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=PAD_MULTIPLE),
                          callbacks=callbacks)
        result = trainer.train()
        self.model = trainer.model
        remove_checkpoints(trainer)
        self.info.update(base_model=base_info, training={
            "train_texts": len(texts), "train_chunks": len(train), "dev_texts": len(dev_texts or []),
            "precision": precision, "device": str(args.device), "world_size": args.world_size,
            "epochs_run": round(trainer.state.epoch or 0, 2), "steps": trainer.state.global_step,
            "best_dev_macro_f1": trainer.state.best_metric})
        # timings go to the log, not model.json: the same data and seed must give the same directory
        log.info("bert: trained %d steps in %.1fs (%.1f chunks/s) on %s", trainer.state.global_step,
                 result.metrics["train_runtime"], result.metrics["train_samples_per_second"], args.device)
        if has_dev:
            self.tune_thresholds(list(dev_texts), np.asarray(dev_targets))
        return self

    def _labelled_chunks(self, texts, targets, weights=None) -> list[dict]:
        """Every chunk of every text, with its text's targets and row weight (default 1)."""
        chunks, mapping = encode_chunks(self.tokenizer, list(texts), self.settings.max_length,
                                        self.settings.stride)
        labels = np.asarray(targets, dtype=np.float32)[mapping]
        row_weights = np.ones(len(chunks)) if weights is None else np.asarray(weights, dtype=float)[mapping]
        for chunk, label, weight in zip(chunks, labels, row_weights):
            chunk["labels"], chunk["weight"] = label.tolist(), float(weight)
        return chunks

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        return self._score(list(texts), progress=True)

    def _score(self, texts: list[str], progress: bool) -> np.ndarray:
        if self.model is None:
            raise ModelError("the BERT classifier has no weights: fit() or load_model() it first")
        scores = np.zeros((len(texts), len(self.themes)), dtype=np.float32)
        if not texts:
            return scores
        chunks, mapping = encode_chunks(self.tokenizer, texts, self.settings.max_length, self.settings.stride)
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        precision = resolve_precision(self.settings.precision)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                    if device.type == "cuda" and precision != "fp32" else contextlib.nullcontext())
        collate = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=PAD_MULTIPLE)
        model = self.model.to(device).eval()
        started = time.perf_counter()
        with (torch.inference_mode(),
              tqdm(total=len(texts), unit="para", desc="bert", disable=None if progress else True) as bar):
            for text_ids, chunk_ids in _length_sorted_batches(chunks, mapping, self.settings.eval_batch_size):
                batch = {k: v.to(device) for k, v in collate([chunks[i] for i in chunk_ids]).items()}
                with autocast:
                    logits = model(**batch).logits.float().cpu().numpy()
                local = np.searchsorted(text_ids, mapping[chunk_ids])  # text_ids is sorted
                scores[text_ids] = sigmoid(pool_max(logits, local, len(text_ids)))
                bar.update(len(text_ids))
        if progress:
            elapsed = time.perf_counter() - started
            log.info("bert: scored %d paragraphs (%d chunks) in %.1f s, %.0f paragraphs/s on %s",
                     len(texts), len(chunks), elapsed, len(texts) / max(elapsed, 1e-9), device)
        return scores

    def save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(directory)  # safetensors
        self.tokenizer.save_pretrained(directory)

    def load_weights(self, directory: Path) -> None:
        directory = Path(directory)
        try:
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
        except OSError:
            raise ModelError(f"'{directory}' has no BERT weights (config.json): retrain it with "
                             "`dvc repro train_bert`") from None
        labels = [config.id2label[i] for i in range(config.num_labels)]
        if labels != self.themes:
            raise ModelError(f"BERT weights in '{directory}' predict {labels} (config.json id2label), but "
                             f"the codebook has {self.themes}: retrain it with `dvc repro train_bert`")
        self.model = AutoModelForSequenceClassification.from_pretrained(
            directory, local_files_only=True, attn_implementation="sdpa")
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _length_sorted_batches(chunks: list[dict], mapping: np.ndarray,
                           max_chunks: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(text ids in ascending order, their chunk ids) per batch: whole texts, longest first, so a batch
    pads little and all of a text's chunks meet in one batch for pooling."""
    n_texts = int(mapping[-1]) + 1
    first = np.searchsorted(mapping, np.arange(n_texts + 1))  # text t has chunks first[t]:first[t + 1]
    counts = np.diff(first)
    longest = np.array([len(chunks[i]["input_ids"]) for i in first[:-1]])  # a text's first chunk is its longest

    def emit(batch: list[int]) -> tuple[np.ndarray, np.ndarray]:
        text_ids = np.sort(np.array(batch))
        return text_ids, np.concatenate([np.arange(first[t], first[t + 1]) for t in text_ids])

    batch, size = [], 0
    for t in np.argsort(-longest, kind="stable"):
        if batch and size + counts[t] > max_chunks:
            yield emit(batch)
            batch, size = [], 0
        batch.append(int(t))
        size += counts[t]
    yield emit(batch)
