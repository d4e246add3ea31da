#!/usr/bin/env bash
# The LoRA recipe's first 20 optimizer steps on one GPU, stock DPOTrainer vs shared responses,
# on a randomly initialised Qwen2-7B-shaped model: pairs/s and peak GPU memory of each side go
# to benchmarks/results/ (and to $OUT when set, for a lent machine). Each side runs the recipe
# as shipped (recipes/qwen2-7b-instruct/dpo/config_lora.yaml: 8 requests = 120 pairs per step);
# shared: 2 requests per micro-batch x 4 accumulation steps, as the recipe; stock: 15 pairs per
# micro-batch x 8 accumulation steps (the GPU's natural micro-batch, ~19 GB at 15 pairs on an
# H200 run). Expected: ~8-9 min on one H100 (stock ~4 min, shared ~1 min, model build and
# tokenisation the rest).
#
#   bash benchmarks/gpu_lora_first20.sh            # STEPS=5 for a quicker check
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
STEPS=${STEPS:-20}
PER_STEP=8                                        # requests per optimizer step (the recipe's)
MODEL=${MODEL:-/tmp/qwen2-7b-shape}
NAME=${NAME:-bench_dpo_gpu_lora_first${STEPS}}
export PYTHONPATH="$PWD:$PWD/recipes${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false

"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name(0))"
[ -d "$MODEL" ] || "$PYTHON" benchmarks/make_random_model.py --out "$MODEL" --shape qwen2-7b
mkdir -p benchmarks/results
"$PYTHON" benchmarks/bench_dpo.py --stand-in-text --skip-recipe --model "$MODEL" \
    --recipe recipes/qwen2-7b-instruct/dpo/config_lora.yaml \
    --stock-micro-batch 15 --requests-per-step "$PER_STEP" --shared-micro-batch 2 \
    --requests $((STEPS * PER_STEP)) --json "benchmarks/results/$NAME.json"
if [ -n "${OUT:-}" ]; then cp "benchmarks/results/$NAME.json" "$OUT/"; fi
