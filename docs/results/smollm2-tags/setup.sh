# Shared set-up on the leased GPU machine (sourced). The repo root is the working directory.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
if [ ! -f "$SITE/.done" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" ${WHL:-.dev/whl}/*.whl || exit 1
  touch "$SITE/.done"
fi
export PYTHONPATH=$SITE:$PWD/.dev/pkgs:$PWD
if [ ! -d ../shared/data/needlebench ]; then
  mkdir -p ../shared/data && tar xJf .dev/payload.tar.xz -C ../shared/data needlebench || exit 1
fi
if [ ! -f data/train.jsonl ]; then
  [ -d data/gold-w1024 ] || { mkdir -p data && tar xJf .dev/payload.tar.xz -C data gold-w1024 gold-w512 || exit 1; }
  cat data/gold-w1024/train.jsonl data/gold-w512/train.jsonl > data/train.jsonl
  cat data/gold-w1024/eval.jsonl data/gold-w512/eval.jsonl > data/eval.jsonl
fi
