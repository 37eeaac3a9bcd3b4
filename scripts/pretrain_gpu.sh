#!/usr/bin/env bash
# The GPU pretraining run that this repository's CPU model stands in for. Run from the repository root on
# a machine with a CUDA GPU:
#
#     bash scripts/pretrain_gpu.sh                       # a new 4-layer model, ~200M tokens
#     INIT_FROM=hfl/rbt3 LR=0.0001 bash scripts/pretrain_gpu.sh   # continue a public Chinese checkpoint
#     MINUTES=7 bash scripts/pretrain_gpu.sh             # stop and export after 7 minutes of training
#
# On a machine beside ../shared it builds the corpus (scripts/build_pretrain_corpus.py: dev/test dates and
# articles of the coded data left out). On one that gets only the repository (the device tool), run
# `python scripts/pack_for_device.py` here first and carry build/device: the packed corpus and the wheels
# of what the device's Python lacks are used from there, and the standard vocabulary from the shipped
# encoder's copy. Then:
# 1. writes a params file whose `pretrain` section is params.yaml's with the GPU values below, and runs
#    `python -m pipeline pretrain` with it: bf16, torch.compile and an 8-process data loader are
#    switched on automatically on CUDA; checkpoints every 500 steps, so a rerun resumes;
# 2. the result replaces models/pretrained/$NAME (fp16 safetensors + tokenizer + MODEL_CARD.md); then
#    `dvc repro train_bert` fine-tunes it (raise bert.max_steps / max_minutes on a GPU);
# 3. where $OUT is set (the device tool's folder that comes back), the model, its curves and the log go
#    there as one tar in parts of at most 15 MiB: `cat pretrain_gpu.tar.part-* | tar -xf -` here.
#
# Sizes (one H100/H200, measured for bert-base in docs/benchmarks.md; a 4-layer model is ~20× cheaper per
# token): STEPS=6000 × BATCH=128 × 256 tokens ≈ 200M tokens, well under an hour for the 4-layer shape. The
# corpus has ~31M characters (~14M packed): that is ~6 (~14) passes, which suits MLM with fresh masks per pass.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then PY=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3); fi
CORPORA=${CORPORA:-../shared/corpora}
NEWS=${NEWS:-/tmp/corpora}          # where the news archives are unpacked (tar -xJf each of $CORPORA/news/*)
NAME=${NAME:-zh-political-bert-mini}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-128}
LR=${LR:-0.0005}
INIT_FROM=${INIT_FROM:-}
MINUTES=${MINUTES:-0}
PACKED=${PACKED:-build/device}      # scripts/pack_for_device.py's output
REVISION=${REVISION:-}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

[ "${CPU_DRY_RUN:-0}" = 1 ] ||  # the whole path on a CPU, with tiny STEPS/BATCH, before spending GPU time
    $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: this script is for a GPU machine')"
if [ -d "$PACKED/wheels" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/device-site \
        "$PACKED"/wheels/*.whl
    export PYTHONPATH=/tmp/device-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d "$PACKED/corpus" ]; then
    CORPUS_DIR=$PACKED/corpus
else
    CORPUS_DIR=build/pretrain_corpus
    if [ ! -f $CORPUS_DIR/train.jsonl ]; then
        $PY scripts/build_pretrain_corpus.py --corpora "$CORPORA" --news "$NEWS" --out $CORPUS_DIR
    fi
fi
mkdir -p build
PARAMS=build/pretrain_gpu.params.yaml
$PY - "$PARAMS" <<PYEOF
import os, sys, yaml
params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
section = params["pretrain"]
if not os.path.isfile(section["vocab"]):  # ../shared did not travel: the shipped encoder holds the same file
    section["vocab"] = "models/pretrained/zh-political-bert-mini/vocab.txt"
section.update(corpus="$CORPUS_DIR", name="$NAME", out_dir="models/pretrained/$NAME",
               checkpoint_dir="models/.pretrain_checkpoint_gpu", live_dir="dvclive/pretrain_gpu",
               batch_size=$BATCH, max_steps=$STEPS, learning_rate=$LR, warmup_steps=max(1, $STEPS // 20),
               max_minutes=$MINUTES, threads=0, eval_every_steps=250, save_every_steps=500, eval_sequences=1024,
               init_from="$INIT_FROM", revision="$REVISION")
yaml.safe_dump({"pretrain": section}, open(sys.argv[1], "w", encoding="utf-8"), allow_unicode=True)
PYEOF
status=0
$PY -m pipeline --params "$PARAMS" pretrain 2>&1 | tee build/pretrain_gpu.log || status=$?
if [ -n "${OUT:-}" ]; then  # what exists, also after a failure
    for path in "models/pretrained/$NAME" dvclive/pretrain_gpu "$PARAMS" build/pretrain_gpu.log; do [ -e "$path" ] && echo "$path"; done |
        tar -cf - -T - | split -b 15m - "$OUT/pretrain_gpu.tar.part-"
fi
[ $status = 0 ] || exit $status
echo "done: models/pretrained/$NAME (MODEL_CARD.md has the curves); next: dvc repro train_bert"
