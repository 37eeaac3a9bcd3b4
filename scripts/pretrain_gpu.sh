#!/usr/bin/env bash
# The GPU pretraining run that this repository's CPU model stands in for. Run from the repository root on
# a machine with a CUDA GPU, the real corpora and the unpacked news archives:
#
#     bash scripts/pretrain_gpu.sh                       # a new 4-layer model, ~200M tokens
#     INIT_FROM=hfl/rbt3 LR=0.0001 bash scripts/pretrain_gpu.sh   # continue a public Chinese checkpoint
#
# 1. builds the corpus (scripts/build_pretrain_corpus.py: dev/test dates and articles of the coded data left out);
# 2. writes a params file whose `pretrain` section is params.yaml's with the GPU values below, and runs
#    `python -m pipeline pretrain` with it: bf16, torch.compile and an 8-process data loader are
#    switched on automatically on CUDA; checkpoints every 500 steps, so a rerun resumes;
# 3. the result replaces models/pretrained/$NAME (fp16 safetensors + tokenizer + MODEL_CARD.md); then
#    `dvc repro train_bert` fine-tunes it (raise bert.max_steps / max_minutes on a GPU).
#
# Sizes (one H100/H200, measured for bert-base in docs/benchmarks.md; a 4-layer model is ~20× cheaper per
# token): STEPS=6000 × BATCH=128 × 256 tokens ≈ 200M tokens, well under an hour for the 4-layer shape. The
# corpus has ~31M characters: that is ~6 passes, which suits MLM with fresh masks per pass.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CORPORA=${CORPORA:-../shared/corpora}
NEWS=${NEWS:-/tmp/corpora}          # where the news archives are unpacked (tar -xJf each of $CORPORA/news/*)
NAME=${NAME:-zh-political-bert-mini}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-128}
LR=${LR:-0.0005}
INIT_FROM=${INIT_FROM:-}
REVISION=${REVISION:-}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: this script is for a GPU machine')"
if [ ! -f build/pretrain_corpus/train.jsonl ]; then
    $PY scripts/build_pretrain_corpus.py --corpora "$CORPORA" --news "$NEWS" --out build/pretrain_corpus
fi
PARAMS=build/pretrain_gpu.params.yaml
$PY - "$PARAMS" <<PYEOF
import sys, yaml
params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
section = params["pretrain"]
section.update(name="$NAME", out_dir="models/pretrained/$NAME", checkpoint_dir="models/.pretrain_checkpoint_gpu",
               batch_size=$BATCH, max_steps=$STEPS, learning_rate=$LR, warmup_steps=max(1, $STEPS // 20),
               max_minutes=0, threads=0, eval_every_steps=250, save_every_steps=500, eval_sequences=1024,
               init_from="$INIT_FROM", revision="$REVISION")
yaml.safe_dump({"pretrain": section}, open(sys.argv[1], "w", encoding="utf-8"), allow_unicode=True)
PYEOF
$PY -m pipeline --params "$PARAMS" pretrain 2>&1 | tee build/pretrain_gpu.log
echo "done: models/pretrained/$NAME (MODEL_CARD.md has the curves); next: dvc repro train_bert"
