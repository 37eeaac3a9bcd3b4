"""`python -m pipeline pretrain`: masked-language-model pretraining of a Chinese BERT on political text.

Not a stage of the default DAG (it costs hours on a CPU and is done once): it writes the encoder that
`bert.base_model` fine-tunes, shipped in models/pretrained/. Design:

* Interchangeable with public Chinese BERTs: the standard 21,128-wordpiece vocabulary
  (`vocab`, Google's Chinese BERT vocab, Apache-2.0), BERT's architecture and file layout, so the
  result loads wherever bert-base-chinese does, and `init_from` continues from any such checkpoint
  (hfl/chinese-roberta-wwm-ext, hfl/rbt3 …) instead of starting from random weights.
* Whole-word masking as in chinese-bert-wwm: jieba's dictionary finds the words (through jieba-rs), and a
  word is masked with all of its characters (80% [MASK], 10% a random token, 10% unchanged), until
  `mlm_probability` of the tokens are picked. Masks are drawn per batch (dynamic masking), seeded by the
  batch number.
* Sequence packing: documents are tokenised into one stream ([SEP] between documents) cut into full
  `max_length` sequences, so no step is spent on padding.
* The MLM head scores only the masked positions: a 21,128-way softmax on every token would cost more
  than the encoder itself.
* Devices. CUDA: bf16 autocast, TF32, torch.compile, a multi-worker data loader with pinned memory.
  CPU: bf16 autocast where the CPU has bf16 instructions (else fp32), `threads` torch threads, data
  prepared in the training process.
* Stop any time. A checkpoint (fp32 weights, optimizer state) is written every `save_every_steps`;
  a rerun resumes from it (reshuffling the corpus, so documents may repeat). `max_steps` and
  `max_minutes` bound the run, and SIGTERM / Ctrl-C end it cleanly: in every case the last state is
  evaluated and exported to `out_dir` (fp16 safetensors, tokenizer, config, MODEL_CARD.md).
* Curves (dvclive, `live_dir`): training loss, and MLM loss and masked-token accuracy on a fixed
  held-out slice (the same masks every evaluation, so the curve moves only with the model).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import io
from pipeline.classifiers.settings import PretrainSettings
from pipeline.config import build_settings
from pipeline.hardware import cpu_name, device_peak

log = logging.getLogger("pipeline.pretrain")

STANDARD_VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
CHECKPOINT_STATE = "trainer_state.json"


def pretrain_settings(params: dict | None, where: str = "params.yaml:pretrain") -> PretrainSettings:
    return build_settings(PretrainSettings, params, where)


# --- data: documents → packed sequences with word ids → whole-word-masked batches ------------------------

def read_documents(path: Path) -> list[str]:
    """Texts of a corpus JSONL file (records without a text string are skipped, with a warning)."""
    texts = []
    for lineno, record in io.read_jsonl(path):
        if isinstance(record.get("text"), str) and record["text"].strip():
            texts.append(record["text"])
        else:
            log.warning("%s:%d: no text, skipped", path, lineno)
    return texts


def corpus_file(corpus: str, slice_: str) -> Path:
    """`<slice>.jsonl` of the corpus directory, or `<slice>.jsonl.xz` where only that is there (a corpus
    packed to travel to a GPU machine: scripts/pack_for_device.py)."""
    plain = Path(corpus) / f"{slice_}.jsonl"
    packed = plain.with_name(plain.name + ".xz")
    return packed if packed.is_file() and not plain.is_file() else plain


def encode_with_words(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """Token ids of `text` and, per token, the index of the word its first character lies in (words as
    segment and the TF-IDF model cut them: jieba's dictionary through jieba-rs), so every token of a word
    shares one id and a wordpiece run like 'gdp' stays one word."""
    from pipeline.text import word_starts

    starts = np.zeros(len(text), dtype=np.int64)
    starts[list(word_starts(text))] = 1
    word_of_char = np.cumsum(starts) - 1
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], [int(word_of_char[a]) for a, _ in enc["offset_mapping"]]


def packed_sequences(tokenizer, texts: list[str], max_length: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, word_ids) of full `max_length` sequences: [CLS] stream… [SEP], the stream being the
    documents' tokens with [SEP] after each. Word ids are unique across the stream; -1 marks specials.
    The last, partial sequence is dropped."""
    body = max_length - 2
    ids: list[int] = []
    words: list[int] = []
    word_base = 0
    for text in texts:
        doc_ids, doc_words = encode_with_words(tokenizer, text)
        ids += doc_ids + [tokenizer.sep_token_id]
        words += [w + word_base for w in doc_words] + [-1]
        word_base += (max(doc_words) + 1) if doc_words else 0
        while len(ids) >= body:
            yield (np.array([tokenizer.cls_token_id] + ids[:body] + [tokenizer.sep_token_id], dtype=np.int64),
                   np.array([-1] + words[:body] + [-1], dtype=np.int64))
            ids, words = ids[body:], words[body:]


def whole_word_mask(input_ids: np.ndarray, word_ids: np.ndarray, rng: np.random.Generator, probability: float,
                    mask_id: int, vocab_size: int, special_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(masked inputs, labels with -100 where nothing is predicted) for a batch of sequences.

    Per sequence, words are taken in random order while the tokens picked stay within
    round(probability × real tokens) (at least one word); every token of a picked word is predicted
    and becomes [MASK] (80%), a random non-special token (10%) or stays (10%)."""
    inputs, labels = input_ids.copy(), np.full_like(input_ids, -100)
    for row in range(input_ids.shape[0]):
        real = word_ids[row] >= 0
        words, sizes = np.unique(word_ids[row][real], return_counts=True)
        if not len(words):
            continue
        order = rng.permutation(len(words))
        budget = max(1, round(probability * int(real.sum())))
        taken = order[np.cumsum(sizes[order]) <= budget]
        picked = np.isin(word_ids[row], words[taken if len(taken) else order[:1]]) & real
        labels[row, picked] = input_ids[row, picked]
        draw = rng.random(int(picked.sum()))
        replaced = input_ids[row, picked]
        replaced[draw < 0.8] = mask_id
        randomised = (draw >= 0.8) & (draw < 0.9)
        replaced[randomised] = _random_tokens(rng, int(randomised.sum()), vocab_size, special_ids)
        inputs[row, picked] = replaced
    return inputs, labels


def _random_tokens(rng: np.random.Generator, n: int, vocab_size: int, special_ids: np.ndarray) -> np.ndarray:
    tokens = rng.integers(0, vocab_size, n)
    while (bad := np.isin(tokens, special_ids)).any():
        tokens[bad] = rng.integers(0, vocab_size, int(bad.sum()))
    return tokens


class PackedStream(torch.utils.data.IterableDataset):
    """Packed sequences from the documents in a seeded random order, endlessly (reshuffled each pass);
    with several loader workers each takes every n-th document."""

    def __init__(self, tokenizer, texts: list[str], max_length: int, seed: int):
        self.tokenizer, self.texts, self.max_length, self.seed = tokenizer, texts, max_length, seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        shard, shards = (worker.id, worker.num_workers) if worker else (0, 1)
        for epoch in range(10**9):
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.texts))[shard::shards]
            for input_ids, word_ids in packed_sequences(self.tokenizer, (self.texts[i] for i in order),
                                                        self.max_length):
                yield input_ids, word_ids


class WholeWordMasking:
    """Collate packed sequences into a masked batch; the masks are seeded by (seed, batch number)."""

    def __init__(self, tokenizer, probability: float, seed: int):
        self.probability, self.seed, self.calls = probability, seed, 0
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self.special_ids = np.array(tokenizer.all_special_ids)

    def __call__(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, worker.id if worker else 0, self.calls])
        self.calls += 1
        input_ids, word_ids = np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
        inputs, labels = whole_word_mask(input_ids, word_ids, rng, self.probability, self.mask_id,
                                         self.vocab_size, self.special_ids)
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels)}


# --- model ---------------------------------------------------------------------------------------------

def load_tokenizer(vocab: str):
    from transformers import BertTokenizerFast

    path = Path(vocab)
    if not path.is_file():
        raise FileNotFoundError(f"pretrain.vocab: '{vocab}' does not exist: point it at the standard Chinese "
                                "BERT vocab.txt (../shared/models/chinese-bert-vocab/ or any shipped model)")
    # vocab=, not vocab_file=: transformers 5 ignores vocab_file and maps every character to [UNK]
    return BertTokenizerFast(vocab=str(path), do_lower_case=True, tokenize_chinese_chars=True)


def build_mlm_model(s: PretrainSettings):
    """(model, tokenizer, origin) — a new BERT on the standard vocab, or the `init_from` checkpoint."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig

    if s.init_from:
        from pipeline.classifiers.bert import resolve_base_model

        source = resolve_base_model(s.init_from, revision=s.revision)
        where = source.path or source.name
        kwargs = dict(local_files_only=source.kind != "hub", revision=s.revision or None)
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForMaskedLM.from_pretrained(where, dtype=torch.float32, attn_implementation="sdpa",
                                                     **kwargs)
        if s.max_length > model.config.max_position_embeddings:
            raise ValueError(f"pretrain.max_length {s.max_length} exceeds the {model.config.max_position_embeddings} "
                             f"positions of '{s.init_from}': lower it")
        return model, tokenizer, {"init_from": s.init_from, "revision": s.revision or None, "path": source.path}
    tokenizer = load_tokenizer(s.vocab)
    a = s.architecture
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=a.hidden_size, num_hidden_layers=a.num_layers,
                        num_attention_heads=a.num_heads, intermediate_size=a.intermediate_size,
                        max_position_embeddings=s.max_length, hidden_dropout_prob=a.dropout,
                        attention_probs_dropout_prob=a.dropout, initializer_range=a.initializer_range,
                        pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForMaskedLM.from_config(config, attn_implementation="sdpa")
    return model, tokenizer, {"init_from": None}


def mlm_outputs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, number of correct predictions) over the masked positions only."""
    hidden = model.base_model(input_ids=batch["input_ids"]).last_hidden_state
    predicted = batch["labels"] != -100
    logits = _mlm_head(model)(hidden[predicted])
    targets = batch["labels"][predicted]
    loss = F.cross_entropy(logits.float(), targets)
    return loss, (logits.argmax(-1) == targets).sum()


def _mlm_head(model):
    """The MLM head (transform + decoder): BERT keeps it in .cls, RoBERTa in .lm_head, ALBERT in .predictions."""
    for name in ("cls", "lm_head", "predictions"):
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"pretrain: no MLM head found on {type(model).__name__}")


# --- training ------------------------------------------------------------------------------------------

@dataclass
class Runtime:
    device: torch.device
    bf16: bool
    compile: bool
    loader_workers: int

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


def resolve_runtime(s: PretrainSettings) -> Runtime:
    cuda = torch.cuda.is_available()
    if s.precision == "auto":
        from pipeline.classifiers.bert import cpu_has_bf16

        # measured here on one thread: 4,250 bf16 against 2,740 fp32 training tokens/s
        bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    else:
        bf16 = s.precision == "bf16"
    compile_ = cuda if s.torch_compile == "auto" else s.torch_compile == "on"
    workers = (min(8, os.cpu_count() or 1) if cuda else 0) if s.loader_workers == -1 else s.loader_workers
    return Runtime(torch.device("cuda" if cuda else "cpu"), bf16, compile_, workers)


def learning_rate(step: int, s: PretrainSettings) -> float:
    """Linear warm-up over `warmup_steps`, then linear decay to 0 at `max_steps`."""
    warm = min(1.0, (step + 1) / s.warmup_steps) if s.warmup_steps else 1.0
    return s.learning_rate * warm * max(0.0, 1 - step / s.max_steps)


def held_out_batches(tokenizer, texts: list[str], s: PretrainSettings) -> list[dict[str, torch.Tensor]]:
    """The held-out sequences, masked once (fixed seed): every evaluation scores the same predictions."""
    sequences = []
    for sequence in packed_sequences(tokenizer, texts, s.max_length):
        if len(sequences) >= s.eval_sequences:
            break
        sequences.append(sequence)
    masking = WholeWordMasking(tokenizer, s.mlm_probability, seed=s.seed + 1)
    return [masking(sequences[i:i + s.batch_size]) for i in range(0, len(sequences), s.batch_size)]


@torch.inference_mode()
def evaluate(model, batches: list[dict], runtime: Runtime) -> dict[str, float]:
    model.eval()
    loss_sum, correct, predicted = 0.0, 0, 0
    for batch in batches:
        batch = {k: v.to(runtime.device) for k, v in batch.items()}
        with runtime.autocast():
            loss, right = mlm_outputs(model, batch)
        n = int((batch["labels"] != -100).sum())
        loss_sum, correct, predicted = loss_sum + float(loss) * n, correct + int(right), predicted + n
    model.train()
    if not predicted:
        return {}
    return {"eval_mlm_loss": round(loss_sum / predicted, 4), "eval_masked_accuracy": round(correct / predicted, 4)}


class StopRequest:
    """SIGTERM / SIGINT end the run after the current step (then evaluate, checkpoint, export)."""

    def __init__(self):
        self.reason = ""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.reason = signal.Signals(signum).name


def _fingerprint(s: PretrainSettings) -> str:
    """What a checkpoint must share with the settings to be resumed."""
    key = json.dumps([asdict(s.architecture), s.init_from, s.revision, s.max_length, s.vocab], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def run(s: PretrainSettings) -> dict:
    from dvclive import Live

    runtime = resolve_runtime(s)
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    train_path, heldout_path = corpus_file(s.corpus, "train"), corpus_file(s.corpus, "heldout")
    if not train_path.is_file():
        raise FileNotFoundError(f"pretrain.corpus: '{train_path}' does not exist: build the corpus with "
                                "`python scripts/build_pretrain_corpus.py` (see README, Pretraining)")
    texts = read_documents(train_path)
    heldout = read_documents(heldout_path) if heldout_path.is_file() else []
    model, tokenizer, origin = build_mlm_model(s)
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=s.learning_rate, eps=1e-6,
                                  fused=runtime.device.type == "cuda")
    checkpoint = Path(s.checkpoint_dir)
    state = {"fingerprint": _fingerprint(s), "step": 0, "tokens": 0, "resumes": 0, "elapsed_s": 0.0,
             "history": []}
    if (checkpoint / CHECKPOINT_STATE).is_file():
        state = load_checkpoint(checkpoint, model, optimizer, state["fingerprint"])
        state["resumes"] += 1
        log.info("pretrain: resuming from %s at step %d", checkpoint, state["step"])
    model.to(runtime.device).train()
    if runtime.compile:
        model.base_model.compile()  # in place: parameter names (and so checkpoints) stay unchanged
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    eval_batches = held_out_batches(tokenizer, heldout, s)
    loader = torch.utils.data.DataLoader(
        PackedStream(tokenizer, texts, s.max_length, seed=s.seed + 1000 * state["resumes"]),
        batch_size=s.batch_size, collate_fn=WholeWordMasking(tokenizer, s.mlm_probability,
                                                             seed=s.seed + 1000 * state["resumes"] + 2),
        num_workers=runtime.loader_workers, pin_memory=runtime.device.type == "cuda",
        persistent_workers=runtime.loader_workers > 0, prefetch_factor=4 if runtime.loader_workers else None)
    live = Live(dir=s.live_dir, save_dvc_exp=False, dvcyaml=False, resume=state["step"] > 0)
    log.info("pretrain: %d documents, %d held-out sequences, %.1fM parameters, %s, bf16=%s, compile=%s, "
             "%d threads", len(texts), sum(len(b["input_ids"]) for b in eval_batches), model.num_parameters() / 1e6,
             runtime.device, runtime.bf16, runtime.compile, torch.get_num_threads())

    stop, started = StopRequest(), time.monotonic()
    elapsed_before, tokens_before = state["elapsed_s"], state["tokens"]
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    masked = torch.zeros((), device=runtime.device, dtype=torch.long)
    steps_in_window = 0
    batches = iter(loader)
    while state["step"] < s.max_steps and not stop.reason:
        batch = {k: v.to(runtime.device, non_blocking=True) for k, v in next(batches).items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(state["step"], s)
        with runtime.autocast():
            loss, right = mlm_outputs(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        state["tokens"] += batch["input_ids"].numel()
        loss_sum += loss.detach()
        correct += right
        masked += (batch["labels"] != -100).sum()
        steps_in_window += 1
        state["elapsed_s"] = elapsed_before + time.monotonic() - started
        if s.max_minutes and time.monotonic() - started >= s.max_minutes * 60:
            stop.reason = "max_minutes"
        last = state["step"] >= s.max_steps or bool(stop.reason)
        if state["step"] % s.eval_every_steps == 0 or last:
            record = {"step": state["step"], "tokens": state["tokens"],
                      "train_loss": round(float(loss_sum) / steps_in_window, 4),
                      "train_masked_accuracy": round(int(correct) / max(1, int(masked)), 4),
                      "learning_rate": learning_rate(state["step"] - 1, s), **evaluate(model, eval_batches, runtime)}
            state["history"].append(record)
            live.step = state["step"]
            for name, value in record.items():
                if name != "step":
                    live.log_metric(name, value)
            live.make_summary()
            loss_sum.zero_(), correct.zero_(), masked.zero_()
            steps_in_window = 0
            rate = (state["tokens"] - tokens_before) / max(1e-9, time.monotonic() - started)
            log.info("pretrain: step %d, %.2fM tokens, %.0f tokens/s, %s", state["step"], state["tokens"] / 1e6,
                     rate, {k: v for k, v in record.items() if k not in ("step", "tokens")})
        if state["step"] % s.save_every_steps == 0 or last:
            save_checkpoint(checkpoint, model, optimizer, state)
    live.end()
    rate = (state["tokens"] - tokens_before) / max(1e-9, time.monotonic() - started)
    peak = device_peak(runtime.device, "bf16" if runtime.bf16 else "fp32")
    stats = {"name": s.name, "stopped_by": stop.reason or "max_steps", "steps": state["step"],
             "tokens_seen": state["tokens"], "wall_time_s": round(state["elapsed_s"], 1),
             "tokens_per_s_last_run": round(rate), "resumes": state["resumes"],
             "mfu": round(rate * training_flops_per_token(model.config, s) / peak, 4) if peak else None,
             "peak_tflops": round(peak / 1e12, 1) if peak else None,
             "final": state["history"][-1] if state["history"] else {}, "history": state["history"],
             "parameters": model.num_parameters(), "origin": origin,
             "hardware": hardware(runtime), "device": runtime.device.type, "settings": asdict(s),
             "corpus": _manifest(Path(s.corpus)), "documents": len(texts)}
    export(model, tokenizer, s, stats)
    return stats


def save_checkpoint(directory: Path, model, optimizer, state: dict) -> None:
    """fp32 weights, optimizer moments and the run's state, swapped in whole (an interrupted save keeps
    the previous checkpoint). Safetensors and JSON only: loading it runs no code."""
    from safetensors.torch import save_file, save_model

    with io.replaced_dir(directory) as tmp:
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied input/output embeddings
        moments = {f"{i}.{name}": value.detach().cpu().reshape(-1).contiguous()
                   for i, slots in optimizer.state_dict()["state"].items() for name, value in slots.items()}
        save_file(moments, str(tmp / "optimizer.safetensors"))
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")


def load_checkpoint(directory: Path, model, optimizer, fingerprint: str) -> dict:
    from safetensors.torch import load_file, load_model

    state = json.loads((directory / CHECKPOINT_STATE).read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint:
        raise ValueError(f"pretrain: the checkpoint in '{directory}' was made with another architecture, "
                         "vocab, max_length or init_from: delete that folder to start afresh")
    load_model(model, str(directory / "model.safetensors"))
    saved = optimizer.state_dict()
    template = {i: p for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    slots: dict[int, dict] = {}
    for key, value in load_file(str(directory / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        shape = () if name == "step" else template[int(index)].shape
        slots.setdefault(int(index), {})[name] = value.reshape(shape)
    saved["state"] = slots
    optimizer.load_state_dict(saved)
    return state


def hardware(runtime: Runtime) -> str:
    if runtime.device.type == "cuda":
        return f"{torch.cuda.get_device_name()} (bf16={runtime.bf16}, compile={runtime.compile})"
    return f"{cpu_name()}, {torch.get_num_threads()} torch thread(s), bf16={runtime.bf16}"


def training_flops_per_token(config, s: PretrainSettings) -> float:
    """Model FLOPs of a training step per token: 6·N + 12·L·H·S (PaLM, appendix B; N the matmul parameters
    each token passes through, L·(4H² + 2·H·I)), plus the MLM head's H² + H·V on the masked share of
    tokens, the only ones it scores."""
    layers, hidden, inner = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    encoder = layers * (4 * hidden**2 + 2 * hidden * inner)
    head = hidden**2 + hidden * config.vocab_size
    return 6 * (encoder + s.mlm_probability * head) + 12 * layers * hidden * s.max_length


def _manifest(corpus: Path) -> dict:
    path = corpus / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# --- export ---------------------------------------------------------------------------------------------

def export(model, tokenizer, s: PretrainSettings, stats: dict) -> Path:
    """fp16 safetensors + tokenizer files (vocab.txt included) + config + pretrain.json + MODEL_CARD.md,
    written beside `out_dir` and swapped in."""
    from transformers import AutoModelForMaskedLM

    out = Path(s.out_dir)
    with io.replaced_dir(out) as tmp:
        plain = AutoModelForMaskedLM.from_config(model.config)  # uncompiled, on the CPU
        plain.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
        plain.half().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not (tmp / "vocab.txt").is_file() and not s.init_from:
            shutil.copyfile(s.vocab, tmp / "vocab.txt")
        vocab = tmp / "vocab.txt"
        vocab_sha = hashlib.sha256(vocab.read_bytes()).hexdigest() if vocab.is_file() else None
        stats = {**stats, "vocab_sha256": vocab_sha, "standard_vocab": vocab_sha == STANDARD_VOCAB_SHA256,
                 "size_mb": round(sum(f.stat().st_size for f in tmp.iterdir()) / 2**20, 2)}
        io.write_json(tmp / "pretrain.json", stats)
        io.write_text(tmp / "MODEL_CARD.md", model_card(stats, model.config))
    log.info("pretrain: %d steps, %.2fM tokens, final %s → %s (%.1f MB)", stats["steps"],
             stats["tokens_seen"] / 1e6, stats["final"], out, stats["size_mb"])
    return out


def _also_held_out(corpus: dict) -> str:
    """How many articles the corpus left out for being filed on a held-out day too ('?': built before that rule)."""
    counts = [v for k, v in corpus.items() if k.startswith("documents_dropped_also_on_a_")]
    return str(sum(counts)) if counts else "?"


def _mfu(stats: dict) -> str:
    if stats.get("mfu") is None:
        return ""
    return f"; MFU {stats['mfu']:.1%} of a {stats['peak_tflops']} TFLOP/s peak (pipeline/hardware.py)"


GPU_RUN_TO_DO = ("The GPU run (`scripts/pretrain_gpu.sh`: larger batch, more steps, or continuing a public "
                 "checkpoint with `init_from`) remains to be done where a GPU is available.")


def _packed(corpus: dict) -> str:
    """What a corpus packed to travel (pretrain_corpus.pack) kept of the one it was packed from."""
    packed = corpus.get("packed")
    if not packed:
        return ""
    return (f" Packed to travel to the GPU machine (scripts/pack_for_device.py): {packed['train_documents']:,} of "
            f"{packed['train_documents_of']:,} training documents, {packed['train_chars'] / 1e6:.2f}M of "
            f"{packed['train_chars_of'] / 1e6:.2f}M characters (every report; news drawn with seed {packed['seed']}).")


def model_card(stats: dict, config) -> str:
    s, final, corpus = stats["settings"], stats["final"], stats["corpus"]
    on_gpu = stats.get("device") == "cuda"
    sources = {k.removeprefix("train_chars_"): v for k, v in corpus.items() if k.startswith("train_chars_")}
    curve = "\n".join(f"| {r['step']} | {r['tokens'] / 1e6:.2f} | {r['train_loss']} | {r.get('eval_mlm_loss', '–')} "
                      f"| {r.get('eval_masked_accuracy', '–')} |" for r in stats["history"])
    origin = (f"continued from `{stats['origin']['init_from']}`" if stats["origin"].get("init_from")
              else "randomly initialised (no public checkpoint could be obtained here)")
    return f"""# {stats['name']}

A small Chinese BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}, {config.num_attention_heads}
heads, intermediate {config.intermediate_size}, {stats['parameters'] / 1e6:.1f}M parameters, fp16 safetensors,
{stats['size_mb']} MB), masked-language-model pretrained on Chinese political text by `python -m pipeline pretrain`
(pipeline/pretrain.py); {origin}. With `bert.base_model` set to its directory, `train_bert` fine-tunes it for the nine themes.

## Vocabulary and compatibility
The standard 21,128-wordpiece Chinese BERT vocabulary (`vocab.txt`, Google's BERT release, **Apache-2.0**;
sha256 `{stats['vocab_sha256']}`, standard: {stats['standard_vocab']}), the one bert-base-chinese,
hfl/chinese-roberta-wwm-ext, hfl/rbt3 and hfl/chinese-macbert-* use: token ids mean the same here as there.
Loads with `AutoModelForMaskedLM` / `AutoModelForSequenceClassification.from_pretrained(this directory)`.
Positions: {config.max_position_embeddings} (the pretraining sequence length), so `bert.max_length` ≤ {config.max_position_embeddings}.

## Data
Built by `scripts/build_pretrain_corpus.py` (pipeline/pretrain_corpus.py) from the real corpora: State Council
government work reports, CPC congress reports, 新闻联播 transcripts 2012–2026, People's Daily 2026 full text.
Paragraph-level exact deduplication ({corpus.get('paragraphs_duplicate', '?')} duplicate paragraphs removed).
**No text published on a date that the real coded data holds out for dev or test** (`split_of_date`, shares
{corpus.get('settings', {}).get('dev_share')} / {corpus.get('settings', {}).get('test_share')}, seed
{corpus.get('settings', {}).get('seed')}; {corpus.get('documents_dropped_dev_date', '?')} dev-date and
{corpus.get('documents_dropped_test_date', '?')} test-date documents dropped, and {_also_held_out(corpus)} articles
filed on a training day that the archive files on a held-out day too). Characters available per source:
{', '.join(f'{k} {v / 1e6:.2f}M' for k, v in sources.items()) or 'unknown'}.{_packed(corpus)}
{stats['documents']} documents were read. A held-out
slice of documents ({corpus.get('settings', {}).get('heldout_share')}) gives the curves below. The corpus itself is
not shipped (the news texts belong to their publishers).

## Training
Whole-word masking (jieba words, {s['mlm_probability']:.0%} of tokens; 80/10/10), packed {s['max_length']}-token
sequences, batch {s['batch_size']}, AdamW lr {s['learning_rate']} (warm-up {s['warmup_steps']} steps, linear decay
over {s['max_steps']}), weight decay {s['weight_decay']}, seed {s['seed']}.

| | |
|---|---|
| steps | {stats['steps']} (stopped by {stats['stopped_by']}; resumed from a checkpoint {stats['resumes']} time(s)) |
| tokens seen | {stats['tokens_seen']:,} ({stats['tokens_seen'] / 1e6:.2f}M) |
| wall time | {stats['wall_time_s'] / 60:.1f} min |
| throughput | {stats['tokens_per_s_last_run']:,} tokens/s (wall clock of the last segment, evaluations included){_mfu(stats)} |
| hardware | {stats['hardware']} |
| final held-out MLM loss | {final.get('eval_mlm_loss', '–')} |
| final held-out masked-token accuracy | {final.get('eval_masked_accuracy', '–')} |

Curve (held-out: the same {s['eval_sequences']} sequences and masks at every evaluation):

| step | tokens (M) | train loss | held-out MLM loss | held-out masked accuracy |
|---|---|---|---|---|
{curve}

## Limitations
A short {'GPU' if on_gpu else 'CPU'} pretraining run: {stats['tokens_seen'] / 1e6:.1f}M tokens is a tiny fraction of
what public Chinese BERTs saw (billions). It is a domain-adapted starting point, not a general Chinese language model.
{'' if on_gpu else GPU_RUN_TO_DO}
"""
