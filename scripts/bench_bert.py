"""Throughput of the BERT classifier: training samples/s and inference paragraphs/s, with MFU.

    python scripts/bench_bert.py --model scratch --max-length 128 --train-batch 16 --infer-batch 64
    python scripts/bench_bert.py --model bert-base --max-length 256 --precision bf16 \\
        --train-batch 64 128 --infer-batch 512 1024 [--compile]

--model: `pretrained` (the shipped MLM-pretrained encoder models/pretrained/zh-political-bert-mini),
`scratch` (the bert.scratch architecture, defaults, with a 6,000-character vocab: the shape of the shipped
distilled student, bert.base_model's default), `bert-base`
(bert-base-chinese's shape: hidden 768, 12 layers, vocab 21128), or a local checkpoint directory
(its config). Weights are randomly initialised — speed does not depend on them — so nothing is
downloaded. Inputs are random token ids filling `max_length`, without padding.

These are sequences/s, not the paragraphs/s that `classify` gives: a real paragraph of the reports
(~185 characters) is on average 1.35 chunks of ~156 tokens at max_length 256 (longer ones are cut into
overlapping chunks), and its batch carries an attention mask. `scripts/bench_classify.py` measures
paragraphs/s through the command line; docs/benchmarks.md compares the two. `--cpu-inference`
scores on CPU as `bert.cpu_inference` does (bf16 autocast or dynamic int8).

Training steps are the classifier's (sequence classification, BCE on 9 themes, AdamW, autocast in
the chosen precision); inference runs under `torch.inference_mode()`.

MFU = achieved model FLOP/s over the device's peak. Model FLOPs per token: 6·N + 12·L·H·S for a
training step and 2·N + 4·L·H·S for inference (N: non-embedding parameters, since embedding lookups
do no matmul; L layers, H hidden, S sequence length: the attention-score and attention-value
matmuls; PaLM, appendix B). Peaks: pipeline/hardware.py.

Each run appends one record (device, versions, config, results) to --out (default
docs/bench_bert_results.json) and prints markdown table rows.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pipeline import io  # noqa: E402
from pipeline.classifiers.bert import ScratchSettings, resolve_precision, scratch_config  # noqa: E402
from pipeline.hardware import cpu_name, device_peak  # noqa: E402

N_THEMES = 9
SCRATCH_VOCAB = 6000  # about the characters of a few thousand paragraphs
BERT_BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)


def build_model(name: str):
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

    labels = dict(num_labels=N_THEMES, problem_type="multi_label_classification")
    if name == "pretrained":
        name = str(Path(__file__).resolve().parents[1] / "models" / "pretrained" / "zh-political-bert-mini")
    if name == "scratch":
        config = scratch_config(ScratchSettings(), SCRATCH_VOCAB, **labels)
    elif name == "bert-base":
        config = BertConfig(**BERT_BASE, **labels)
    else:
        config = AutoConfig.from_pretrained(name, local_files_only=True, **labels)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def timed_steps(step, warmup: int, seconds: float, device: torch.device) -> tuple[int, float]:
    """Run `step` `warmup` times, then until `seconds` have passed; (steps timed, elapsed)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    started, n = time.perf_counter(), 0
    while True:
        step()
        n += 1
        if n % 5 == 0 or device.type == "cpu":
            sync()
            if time.perf_counter() - started >= seconds:
                return n, time.perf_counter() - started


def measure(model, phase: str, batch: int, args, device, precision: str) -> dict:
    cfg = model.config
    inputs = {"input_ids": torch.randint(5, cfg.vocab_size, (batch, args.max_length), device=device),
              "attention_mask": torch.ones(batch, args.max_length, dtype=torch.long, device=device)}
    labels = torch.rand(batch, N_THEMES, device=device)
    n = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)  # before int8 hides them
    if phase == "infer" and device.type == "cpu":
        precision = "bf16" if args.cpu_inference == "bf16" else "fp32"
        if args.cpu_inference == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    runner = torch.compile(model) if args.compile else model
    if phase == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

        def step():
            with autocast:
                loss = runner(**inputs, labels=labels).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast:
                runner(**inputs).logits.float().cpu()  # the copy back is part of scoring

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, elapsed = timed_steps(step, args.warmup, args.seconds, device)
    per_s = steps * batch / elapsed
    attn = cfg.num_hidden_layers * cfg.hidden_size * args.max_length
    flops_per_token = 6 * n + 12 * attn if phase == "train" else 2 * n + 4 * attn
    achieved = per_s * args.max_length * flops_per_token
    peak = device_peak(device, precision)
    return {"phase": phase, "batch": batch, "steps": steps, "seconds": round(elapsed, 2),
            "samples_per_s": round(per_s, 1), "tokens_per_s": round(per_s * args.max_length),
            "tflops": round(achieved / 1e12, 2), "peak_tflops": round(peak / 1e12, 1) if peak else None,
            "mfu": round(achieved / peak, 4) if peak else None,
            "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if device.type == "cuda" else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="scratch", help="pretrained | scratch | bert-base | a checkpoint directory")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-batch", type=int, nargs="*", default=[16])
    parser.add_argument("--infer-batch", type=int, nargs="*", default=[64])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--cpu-inference", default="fp32", choices=["fp32", "bf16", "int8"],
                        help="CPU scoring arithmetic, as bert.cpu_inference")
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    parser.add_argument("--out", default="docs/bench_bert_results.json")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as Trainer's tf32
    precision = resolve_precision(args.precision)
    model = build_model(args.model).to(device)
    results = []
    for phase, batches in (("train", args.train_batch), ("infer", args.infer_batch)):
        for batch in batches:
            try:
                results.append(measure(model, phase, batch, args, device, precision))
            except torch.OutOfMemoryError:
                results.append({"phase": phase, "batch": batch, "error": "out of memory"})
                torch.cuda.empty_cache()
    import transformers

    record = {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "device_type": device.type, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "config": {"model": args.model, "parameters": model.num_parameters(),
                   "non_embedding_parameters": sum(p.numel() for n, p in model.named_parameters()
                                                   if "embeddings" not in n),
                   "max_length": args.max_length, "precision": precision, "compile": args.compile,
                   "cpu_inference": args.cpu_inference if device.type == "cpu" else None},
        "results": results,
    }
    out = Path(args.out)
    history = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    io.write_json(out, history + [record])
    print("| device | model | params | max_len | precision | compile | phase | batch | samples/s | tokens/s "
          "| TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            cells = [r["phase"], r["batch"], r["error"], "", "", ""]
        else:
            mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
            cells = [r["phase"], r["batch"], r["samples_per_s"], r["tokens_per_s"], r["tflops"], mfu]
        print("| " + " | ".join(str(c) for c in [record["device"], args.model,
                                                  f"{record['config']['parameters'] / 1e6:.1f}M", args.max_length,
                                                  precision, args.compile, *cells]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
