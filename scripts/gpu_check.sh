#!/usr/bin/env bash
# One GPU check of the BERT classifier, for a lent H100/H200, run from the repository root:
#
#     OUT=/some/dir bash scripts/gpu_check.sh          (OUT defaults to ./gpu_check_out)
#
# 1. the machine: nvidia-smi, python/torch/CUDA/transformers versions;
# 2. bench_bert.py for a bert-base-sized model at max_length 256 in bf16 (train batches 64 and 128,
#    inference batches 512 and 1024), then the scratch model for reference;
# 3. a short real fine-tune (a few hundred steps) on data/processed/{train,dev}.parquet, or, where
#    those are absent, on data/training/*.jsonl split by document: the params.yaml `bert` config, then
#    the same at bert-base size (from scratch); dev macro-F1 and throughput are kept;
# 4. bench_bert.py again with torch.compile (last: the part most likely to run long).
# Everything lands in $OUT as three files: gpu_check.log, bench_bert_results.json, finetune.json.
# Each part has its own time limit, and a part starts only if it would end by BUDGET_S seconds
# (default 345), so the script ends inside 6 minutes; a failed part is logged, the rest still run.
#
# Python: $PY (default python3, the one holding CUDA torch on the lent machines). Wheels in
# $WHEELS (default .whl/, e.g. transformers==5.24.0 to match pyproject.toml) are installed first,
# offline, into /tmp/site. Training curves (dvclive) are not kept here: finetune.json has the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}
BUDGET_S=${BUDGET_S:-345}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 OUT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/gpu_check.log"

part() {  # part NAME LIMIT_S COMMAND...: run with a time limit if it would end within the budget
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  if (( SECONDS + limit > BUDGET_S )); then
    echo "== $name: skipped, ${SECONDS}s of ${BUDGET_S}s budget used" | tee -a "$LOG"
    return
  fi
  echo "== $name (limit ${limit}s, at ${SECONDS}s)" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start))s" | tee -a "$LOG"
  return "$rc"
}

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  part wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

part nvidia_smi 20 nvidia-smi
part versions 30 "$PY" - <<'EOF' || { echo "== no CUDA torch: stopping" | tee -a "$LOG"; exit 1; }
import sys, torch, transformers
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA",
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
sys.exit(0 if torch.cuda.is_available() else 1)
EOF

BENCH="$OUT/bench_bert_results.json"
part bench_bert_base 150 "$PY" scripts/bench_bert.py --model bert-base --max-length 256 --precision bf16 \
  --train-batch 64 128 --infer-batch 512 1024 --seconds 8 --out "$BENCH"
part bench_scratch 45 "$PY" scripts/bench_bert.py --model scratch --max-length 256 --precision bf16 \
  --train-batch 256 --infer-batch 1024 --seconds 5 --out "$BENCH"

part finetune 130 "$PY" - <<'EOF'
"""Fine-tune on the real splits (or the gold jsonl), as the pipeline's train_bert stage would."""
import json, os, time, zlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.classifiers.bert import BertClassifier, macro_f1
from pipeline.codebook import load_codebook
from pipeline.config import load_params

out, cb = Path(os.environ["OUT"]), load_codebook()
proc = Path("data/processed")
if (proc / "train.parquet").exists() and (proc / "dev.parquet").exists():
    source, train, dev = "data/processed", pd.read_parquet(proc / "train.parquet"), pd.read_parquet(proc / "dev.parquet")
else:
    rows = [json.loads(line) for f in sorted(Path("data/training").glob("*.jsonl"))
            for line in f.open(encoding="utf-8") if line.strip()]
    df = pd.DataFrame(rows)
    for t in cb.ids:
        df[t] = df["themes"].map(lambda themes, t=t: float(t in themes))
    is_dev = df["doc_id"].map(lambda d: zlib.crc32(d.encode()) % 100 < 15)
    df["weight"] = 1.0
    source, train, dev = "data/training (15% of documents as dev)", df[~is_dev], df[is_dev]
xy = lambda f: (f["text"].tolist(), f[cb.ids].fillna(0).to_numpy(np.float32))
configured = load_params().get("bert") or {}
runs = {
    "params_yaml_bert": configured,
    "bert_base_size_scratch": {**configured, "learning_rate": 1e-4, "epochs": 4, "batch_size": 32,
                               "scratch": {"hidden_size": 768, "num_layers": 12, "num_heads": 12,
                                           "intermediate_size": 3072}},
}
report = {"source": source, "train": len(train), "dev": len(dev), "runs": {}}
for name, params in runs.items():
    params = {**params, "live_dir": "", "checkpoint_dir": f"/tmp/ckpt_{name}"}
    model = BertClassifier(cb, params)
    started = time.perf_counter()
    model.fit(*xy(train), *xy(dev), weights=train["weight"].to_numpy())
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = model.predict_scores(xy(dev)[0])
    score_s = time.perf_counter() - started
    report["runs"][name] = {"params": params, **model.info, "fit_s": round(fit_s, 1),
                            "dev_macro_f1_tuned": round(macro_f1(scores, xy(dev)[1], model.thresholds), 4),
                            "dev_paragraphs_per_s": round(len(dev) / score_s, 1)}
    print(name, json.dumps(report["runs"][name]["training"]), "dev macro-F1",
          report["runs"][name]["dev_macro_f1_tuned"], "scoring", report["runs"][name]["dev_paragraphs_per_s"], "para/s")
    (out / "finetune.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
EOF

part bench_compile 120 "$PY" scripts/bench_bert.py --model bert-base --max-length 256 --precision bf16 \
  --compile --train-batch 128 --infer-batch 1024 --warmup 5 --seconds 8 --out "$BENCH"

echo "== done in ${SECONDS}s; files in $OUT:" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
