"""Fine-tuned BERT theme classifier (method "bert"): transformers' sequence classifier, multi-label
(one sigmoid per theme, BCE loss, so silver probabilities train as soft targets), trained by `Trainer`.

Design:

* Base model (`resolve_base_model`). `scratch` builds a tiny BERT whose vocabulary is every character
  of the training texts. A local directory is loaded as a Hugging Face checkpoint: the default,
  models/pretrained/zh-political-bert-distilled, is that tiny BERT taught by the TF-IDF model on
  unlabeled real paragraphs (pipeline/distill.py), theme head included;
  models/pretrained/zh-political-bert-mini was MLM-pretrained on political text (pipeline/pretrain.py,
  standard Chinese BERT vocabulary). A hub name is looked up in the local HF
  cache, then on the hub unless `HF_HUB_OFFLINE` is set, at `revision` when one is pinned; failing
  both, a `ModelError` says what to set, at once rather than after the hub's retries. Layers the
  checkpoint lacks are drawn at the scratch scale (`draw_fresh_layers`). The model actually used (name, kind,
  path, resolved hub commit, parameter count) is recorded in `info["base_model"]`, hence in model.json.
* Long paragraphs. Texts are cut into chunks of `max_length` tokens overlapping by `stride`.
  Training uses every chunk with its paragraph's targets: paragraphs are at most segment.max_chars
  long, so few have two chunks, and a theme stated anywhere in a paragraph is a theme of it.
  Scoring max-pools chunk logits per paragraph (a theme counts if any chunk carries it; a mean would
  dilute a theme stated in one chunk of a long paragraph), then applies the sigmoid. Early stopping
  (and the best epoch kept) watches dev macro-F1 computed the same way, per paragraph, at thresholds
  tuned on dev as the saved model's are.
* Budget. `max_steps` and `max_minutes` bound fine-tuning (a CPU run of `dvc repro` stays in
  minutes); reaching either evaluates dev once more and keeps the best evaluation's weights.
* Precision. `auto`: bf16 on CUDA where supported, else fp16 on CUDA; on CPU bf16 where the CPU has
  it natively (AVX512-BF16 / AMX), else fp32; TF32 matmuls on CUDA. Scoring autocasts to the same
  dtype on CUDA and pools in fp32.
* Scoring speed and memory (`_score`). Every chunk of every text is sorted by length and batched
  with at most `eval_batch_size` chunks, each batch padded to its own longest chunk (multiple of 8):
  little padding, and memory bounded however long one paragraph is; chunk logits are max-pooled per
  text at the end. On CPU `cpu_threads` sets torch's threads (0: its default) and `cpu_inference`
  picks the arithmetic: bf16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX; `auto`),
  fp32, or dynamic int8 (docs/benchmarks.md has the measured speed and score differences). Dev
  scoring during training uses the same arithmetic, so thresholds are tuned on the scores shipped.
* Devices. Nothing here names a device: Trainer (accelerate) places the model, so training runs
  unchanged under `accelerate launch` / `torchrun`; only the main process writes dvclive curves.
* Determinism. On CPU, the same data and seed give the same scores (seeded RNGs, deterministic
  algorithms); on GPU runs agree closely but not bit for bit.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm.auto import tqdm
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          BertTokenizerFast, DataCollatorWithPadding, EarlyStoppingCallback, PreTrainedTokenizerFast,
                          Trainer, TrainerCallback, TrainingArguments, set_seed)
from transformers.integrations import DVCLiveCallback

from pipeline.classifiers.base import ModelError, ThemeClassifier, tune_thresholds
from pipeline.classifiers.settings import BertSettings, ScratchSettings, bert_settings
from pipeline.codebook import Codebook

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_MULTIPLE = 8  # padded lengths in multiples of 8 keep GPU tensor cores busy; costs ~nothing on CPU


# --- base model resolution ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSource:
    name: str  # as configured
    kind: str  # scratch | local | hub_cache | hub
    path: str | None  # the directory loaded (None: built in memory, or still to be downloaded)
    revision: str | None = None  # the pinned hub revision, as configured
    commit: str | None = None  # the hub commit actually loaded (from the HF cache's snapshot folder)


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


def _cached_snapshot(name: str, revision: str = "") -> str | None:
    """The HF-cache directory holding `name`'s config.json at `revision` (default branch when empty),
    or None (never touches the network)."""
    from transformers.utils import CONFIG_NAME, cached_file

    try:
        path = cached_file(name, CONFIG_NAME, revision=revision or None, local_files_only=True,
                           _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):  # ValueError: not a valid repo id
        return None
    return str(Path(path).parent) if path else None


def _looks_like_path(name: str) -> bool:
    """True for what can only be a path; hub names are 'name' or 'owner/name'."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _snapshot_commit(path: str | None) -> str | None:
    """The commit of an HF-cache snapshot directory (…/snapshots/<commit>), else None."""
    if path and Path(path).parent.name == "snapshots":
        return Path(path).name
    return None


def resolve_base_model(base_model: str, revision: str = "") -> ModelSource:
    """Where `base_model` comes from; a `ModelError` (within seconds) if it can't be had."""
    if base_model == "scratch":
        return ModelSource("scratch", "scratch", None)
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"base model directory '{base_model}' is not a Hugging Face checkpoint (no "
                             "config.json): point bert.base_model at a directory saved by save_pretrained")
        return ModelSource(base_model, "local", str(local))
    if _looks_like_path(base_model):
        raise ModelError(f"base model directory '{base_model}' does not exist: fix bert.base_model "
                         "(a local Hugging Face checkpoint, a hub name, or 'scratch'); "
                         "models/pretrained/ holds the checkpoints that ship with the repository")
    cached = _cached_snapshot(base_model, revision)
    if cached:
        return ModelSource(base_model, "hub_cache", cached, revision or None, _snapshot_commit(cached))
    offline = "HF_HUB_OFFLINE is set" if _hub_offline() else None if _hub_reachable() else "no connection"
    if offline:
        at = f" at revision '{revision}'" if revision else ""
        raise ModelError(f"model '{base_model}'{at} not found locally and the hub is unreachable ({offline}): "
                         "set bert.base_model to a local directory (a Hugging Face checkpoint) or to 'scratch'")
    return ModelSource(base_model, "hub", None, revision or None)


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


def build_word_tokenizer(texts: list[str], scratch: ScratchSettings) -> PreTrainedTokenizerFast:
    """A BERT WordPiece tokenizer whose vocabulary holds the words of `texts` (jieba's, the TF-IDF model's
    word features: pipeline.text.words) besides their characters.

    Chinese is not split into single characters first (as BERT's own tokenizer does), so WordPiece matches
    the longest known word: a paragraph is about half as many tokens (a model twice as deep costs the same
    to run), and a token's embedding carries a word. Every piece is kept in both places ('w' starts a run,
    '##w' continues one); characters come first, then words by frequency, up to `vocab_max_size`. A
    character the vocabulary lacks is cut off on its own: WordPiece turns a run it cannot spell into one
    [UNK].
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    from pipeline.text import words

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, lowercase=True)
    characters: Counter[str] = Counter()
    vocabulary: Counter[str] = Counter()
    for text in texts:
        normal = normalizer.normalize_str(text)
        characters.update(c for c in normal if not c.isspace())
        vocabulary.update(w for w in words(normal) if len(w) > 1)
    ranked = [sorted((w for w, n in counts.items() if n >= scratch.vocab_min_freq), key=lambda w: (-counts[w], w))
              for counts in (characters, vocabulary)]  # frequency, then the piece itself: deterministic
    tokens = list(SPECIAL_TOKENS) + [t for piece in ranked[0] + ranked[1] for t in (piece, "##" + piece)]
    tokens = tokens[:scratch.vocab_max_size]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]",
                                           max_input_chars_per_word=10_000))
    alphabet = "".join(re.escape(t) for t in tokens if len(t) == 1)
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(f"[^{alphabet}\\s]"), behavior="isolated"), pre_tokenizers.BertPreTokenizer()])
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", tokens.index("[SEP]")),
                                                         ("[CLS]", tokens.index("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def build_scratch_tokenizer(texts: list[str], scratch: ScratchSettings) -> PreTrainedTokenizerFast:
    return (build_word_tokenizer if scratch.vocabulary == "words" else build_char_tokenizer)(texts, scratch)


def fresh_weight_std(hidden_size: int) -> float:
    """The std new weights are drawn with: 1/sqrt(hidden) rather than BERT's 0.02, which suits hidden sizes
    of 768+: at 128 it starves the signal and training from scratch stalls (measured on the gold
    paragraphs: dev macro-F1 0.15 against 0.61 after 600 steps)."""
    return hidden_size ** -0.5


def scratch_config(scratch: ScratchSettings, vocab_size: int, **extra) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=scratch.hidden_size,
                      initializer_range=fresh_weight_std(scratch.hidden_size),
                      num_hidden_layers=scratch.num_layers, num_attention_heads=scratch.num_heads,
                      intermediate_size=scratch.intermediate_size,
                      max_position_embeddings=scratch.max_position_embeddings,
                      hidden_dropout_prob=scratch.dropout, attention_probs_dropout_prob=scratch.dropout,
                      **extra)


def draw_fresh_layers(model, names: list[str]) -> None:
    """Weights the checkpoint does not hold (the theme head, and the pooler of an MLM-only checkpoint such
    as ours) drawn as `scratch_config` draws them (`fresh_weight_std`): at the checkpoint's 0.02 a small
    encoder's fresh pooler and head starve the signal (measured: the shipped encoder fine-tuned to real
    dev macro-F1 0.55 with them, see docs/benchmarks.md)."""
    std = fresh_weight_std(model.config.hidden_size)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            weight = parameters[name]
            weight.zero_() if name.endswith("bias") else weight.normal_(0.0, std)


def build_model(settings: BertSettings, texts: list[str], themes: list[str]):
    """(model, tokenizer, info) for fine-tuning: the resolved base model with a fresh theme head."""
    source = resolve_base_model(settings.base_model, settings.revision)
    labels = dict(num_labels=len(themes), id2label=dict(enumerate(themes)),
                  label2id={t: i for i, t in enumerate(themes)}, problem_type="multi_label_classification")
    if source.kind == "scratch":
        tokenizer = build_scratch_tokenizer(texts, settings.scratch)
        config = scratch_config(settings.scratch, len(tokenizer), **labels)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    else:
        where = source.path or source.name
        hub = dict(local_files_only=source.kind != "hub", revision=source.revision)
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **hub)
            # ignore_mismatched_sizes: a checkpoint fine-tuned for other labels still gives its encoder;
            # float32: checkpoints shipped in fp16 (ours) are trained in full precision
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                where, attn_implementation="sdpa", ignore_mismatched_sizes=True, dtype=torch.float32,
                output_loading_info=True, **hub, **labels)
        except (OSError, ValueError) as err:
            if source.kind == "hub":
                raise ModelError(f"model '{source.name}' not found locally nor fetched from the hub "
                                 f"({type(err).__name__}: {err}): set bert.base_model to a local directory "
                                 "(a Hugging Face checkpoint) or to 'scratch'") from None
            raise ModelError(f"cannot load base model '{source.name}' from '{where}': {err}") from None
        draw_fresh_layers(model, sorted(set(loading["missing_keys"]) | {k for k, *_ in loading["mismatched_keys"]}))
        if source.kind == "hub":  # now downloaded: record the snapshot (and so the commit) it came from
            path = _cached_snapshot(source.name, source.revision or "")
            source = ModelSource(source.name, source.kind, path, source.revision, _snapshot_commit(path))
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


# --- Trainer plumbing --------------------------------------------------------------------------------

def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 matmuls natively here (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_inference_mode(setting: str) -> str:
    """fp32 | bf16 | int8: `auto` resolved for this CPU."""
    if setting != "auto":
        return setting
    return "bf16" if cpu_has_bf16() else "fp32"


def resolve_precision(precision: str) -> str:
    """`auto`: bf16 on CUDA where supported (else fp16); on CPU bf16 where it is native (measured on an
    AVX512-BF16 CPU: 1.6× the fp32 training tokens per CPU-second), else fp32."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "bf16" if cpu_has_bf16() else "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def seed_everything(seed: int) -> None:
    set_seed(seed)
    if not torch.cuda.is_available():
        # warn_only: the few ops without a deterministic kernel warn instead of failing
        torch.use_deterministic_algorithms(True, warn_only=True)


def trainer_arguments(s: BertSettings, precision: str, has_eval: bool, best_metric: str | None = None,
                      **overrides) -> TrainingArguments:
    """TrainingArguments from settings: per-epoch evaluation when there is dev data, and per-epoch
    checkpoints (model only) when `best_metric` picks the best epoch to keep."""
    from transformers.utils import is_torch_tf32_available

    keep_best = has_eval and best_metric is not None
    return TrainingArguments(
        output_dir=s.checkpoint_dir, num_train_epochs=s.epochs, max_steps=s.max_steps or -1,
        learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size, per_device_eval_batch_size=s.eval_batch_size,
        gradient_accumulation_steps=s.grad_accum, warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay,
        seed=s.seed, bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=precision == "bf16" and not torch.cuda.is_available(),  # Trainer's CPU bf16 (autocast) path
        tf32=True if torch.cuda.is_available() and is_torch_tf32_available() else None,
        torch_compile=s.torch_compile, train_sampling_strategy="group_by_length",
        eval_strategy="epoch" if has_eval else "no", save_strategy="epoch" if keep_best else "no",
        save_only_model=True, save_total_limit=1, load_best_model_at_end=keep_best,
        metric_for_best_model=best_metric if keep_best else None, greater_is_better=True if keep_best else None,
        logging_strategy="steps", logging_steps=0.02, report_to="none",
        ddp_find_unused_parameters=False,  # every parameter gets a gradient; the search costs time
        **overrides,
    )


class BudgetCallback(TrainerCallback):
    """Ends training at `max_minutes`, and at the step budget (Trainer's own max_steps), with one more
    dev evaluation and checkpoint, so the best weights kept include the last ones (per-epoch
    evaluation alone would miss the steps since the last full epoch)."""

    def __init__(self, max_minutes: float, has_eval: bool):
        self.seconds, self.has_eval, self.started = max_minutes * 60, has_eval, 0.0
        self.stopped_by = "epochs"

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        out_of_time = self.seconds and time.monotonic() - self.started >= self.seconds
        if out_of_time or 0 < args.max_steps <= state.global_step:
            self.stopped_by = "max_minutes" if out_of_time else "max_steps"
            control.should_training_stop = True
            control.should_evaluate = control.should_save = self.has_eval
        return control


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
    weight_files = ("config.json", "model.safetensors", "tokenizer.json")

    def __init__(self, codebook: Codebook, params: dict | None = None):
        super().__init__(codebook, params)
        self.settings = bert_settings(self.params)
        self.model = None
        self.tokenizer = None

    def fit(self, texts, targets, dev_texts=None, dev_targets=None, weights=None, contexts=None,
            dev_contexts=None) -> "BertClassifier":
        s = self.settings
        precision = resolve_precision(s.precision)
        _set_cpu_threads(s.cpu_threads)
        seed_everything(s.seed)  # before the model is built: the fresh weights are seeded too
        self.model, self.tokenizer, base_info = build_model(s, list(texts), self.themes)
        train = self._labelled_chunks(texts, targets, weights)
        has_dev = bool(dev_texts)
        args = trainer_arguments(s, precision, has_dev, best_metric="macro_f1" if has_dev else None,
                                 remove_unused_columns=False)  # keep each chunk's "weight" for the loss
        budget = BudgetCallback(s.max_minutes, has_dev)
        callbacks = [budget, *live_callbacks(s.live_dir, args)]
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
            "stopped_by": budget.stopped_by, "best_dev_macro_f1": trainer.state.best_metric})
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

    def predict_scores(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """Scores of the paragraphs alone: the encoder has not been trained with a context segment."""
        return self._score(list(texts), progress=True)

    def _score(self, texts: list[str], progress: bool) -> np.ndarray:
        if self.model is None:
            raise ModelError("the BERT classifier has no weights: fit() or load_model() it first")
        if not texts:
            return np.zeros((0, len(self.themes)), dtype=np.float32)
        s = self.settings
        enc = self.tokenizer(texts, truncation=True, max_length=s.max_length, stride=s.stride,
                             return_overflowing_tokens=True, return_attention_mask=False,
                             return_token_type_ids=False)
        chunks, mapping = enc["input_ids"], np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        precision = resolve_precision(s.precision)
        if device.type == "cuda":
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                        if precision != "fp32" else contextlib.nullcontext())
        else:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                                      enabled=cpu_inference_mode(s.cpu_inference) == "bf16")
        model = self.model.to(device).eval()
        positions = model.config.max_position_embeddings
        chunk_logits = np.empty((len(chunks), len(self.themes)), dtype=np.float32)
        started = time.perf_counter()
        with (torch.inference_mode(),
              tqdm(total=len(chunks), unit="chunk", desc="bert", disable=None if progress else True) as bar):
            for batch in length_sorted_batches(lengths, s.eval_batch_size):
                input_ids, attention_mask = pad_batch([chunks[i] for i in batch], int(lengths[batch[0]]),
                                                      self.tokenizer.pad_token_id, positions)
                with autocast:
                    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
                chunk_logits[batch] = logits.float().cpu().numpy()
                bar.update(len(batch))
        if progress:
            elapsed = time.perf_counter() - started
            log.info("bert: scored %d paragraphs (%d chunks) in %.1f s, %.0f paragraphs/s on %s",
                     len(texts), len(chunks), elapsed, len(texts) / max(elapsed, 1e-9), device)
        return sigmoid(pool_max(chunk_logits, mapping, len(texts)))

    def save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(directory)  # safetensors
        self.tokenizer.save_pretrained(directory)

    def load_weights(self, directory: Path) -> None:
        directory = Path(directory)
        config_file, weights_file = directory / "config.json", directory / "model.safetensors"
        try:
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelError(f"'{config_file}' is missing or unreadable ({_first_line(err)}): retrain it with "
                             "`dvc repro -s train_bert`") from None
        labels = [config.id2label[i] for i in range(config.num_labels)]
        if labels != self.themes:
            raise ModelError(f"BERT weights in '{directory}' predict {labels} (config.json id2label), but "
                             f"the codebook has {self.themes}: retrain it with `dvc repro train_bert`")
        from safetensors import SafetensorError

        try:
            model, report = AutoModelForSequenceClassification.from_pretrained(
                directory, config=config, local_files_only=True, attn_implementation="sdpa",
                dtype=torch.float32, output_loading_info=True)
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:
            raise ModelError(f"'{weights_file}' cannot be loaded ({_first_line(err)}): the file is damaged or "
                             "does not match config.json; retrain it with `dvc repro -s train_bert`") from None
        wrong = report.get("missing_keys") or report.get("mismatched_keys")
        if wrong:
            raise ModelError(f"'{weights_file}' does not match '{config_file}' ({len(wrong)} weights missing or "
                             f"of another shape, e.g. {sorted(map(str, wrong))[0]}): retrain it with "
                             "`dvc repro -s train_bert`")
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        _set_cpu_threads(self.settings.cpu_threads)
        self.model = quantized_for_cpu(model, self.settings.cpu_inference).eval()


def quantized_for_cpu(model, cpu_inference: str):
    """`model` with dynamic int8 linear layers when `cpu_inference` is int8 on a CPU, else unchanged."""
    if cpu_inference == "int8" and not torch.cuda.is_available():
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _set_cpu_threads(threads: int) -> None:
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(threads)


def length_sorted_batches(lengths: np.ndarray, max_chunks: int) -> Iterator[np.ndarray]:
    """Chunk indices, longest first, `max_chunks` at a time: each batch pads little, and no batch holds
    more than `max_chunks` chunks however many one text has (a 1 MB paragraph is thousands)."""
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), max_chunks):
        yield order[start:start + max_chunks]


def pad_batch(sequences: list[list[int]], longest: int, pad_id: int,
              positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded to the batch's longest sequence rounded up to PAD_MULTIPLE,
    but never past the model's `positions`."""
    width = min(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, max(longest, positions))
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, :len(sequence)] = sequence
        attention_mask[row, :len(sequence)] = 1
    return torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
