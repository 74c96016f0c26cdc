#!/usr/bin/env bash
# The MLflow tracking server of a cluster study: runs and metrics in a database, artifacts (sample
# grids, the space file) in a store the server proxies, so study drivers need only its URL:
#
#     python -m study.run --space balance.yaml --tracking-uri http://MLFLOW_HOST:5000 ...
#
# Usage: deploy/mlflow_server.sh [DATA_DIR]        (env: MLFLOW_PORT, MLFLOW_BACKEND, MLFLOW_ARTIFACTS)
#
#   MLFLOW_BACKEND    sqlite:///DATA_DIR/mlflow.db by default: one machine, one server worker.
#                     For several workers or a server that moves, use PostgreSQL (pip install psycopg2-binary):
#                     postgresql://mlflow:PASSWORD@db-host:5432/mlflow
#   MLFLOW_ARTIFACTS  DATA_DIR/artifacts by default; s3://bucket/gan-study or gs://bucket/gan-study for
#                     object storage (the server holds the credentials, the clients never see them).
#
# The study driver survives a restart of this server: its writes wait in a queue (spooled to the Tune
# run directory) and are logged when the server answers again; `--resume` replays what is left.
set -euo pipefail

DATA_DIR="${1:-$PWD/mlflow-data}"
mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
PORT="${MLFLOW_PORT:-5000}"
BACKEND="${MLFLOW_BACKEND:-sqlite:///$DATA_DIR/mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS:-$DATA_DIR/artifacts}"
# sqlite allows one writer: keep one worker; PostgreSQL can take more.
WORKERS=1
[[ "$BACKEND" == sqlite:* ]] || WORKERS="${MLFLOW_WORKERS:-4}"

# --host 0.0.0.0: reachable from the cluster's nodes. MLflow >= 3.5 checks the Host header of every
# request against --allowed-hosts (default: localhost and private IPs only), so a driver that uses a
# host NAME (http://mlflow-host:5000) is refused unless that name is listed: add yours to
# MLFLOW_ALLOWED_HOSTS (comma-separated, wildcards allowed, e.g. "mlflow:*,mlflow.ml.svc:*").
HOSTS="localhost:*,127.0.0.1:*,$(hostname):*,$(hostname -f 2>/dev/null || hostname):*,10.*,192.168.*,172.*"
exec mlflow server \
    --backend-store-uri "$BACKEND" \
    --artifacts-destination "$ARTIFACTS" \
    --host 0.0.0.0 --port "$PORT" --workers "$WORKERS" \
    --allowed-hosts "$HOSTS${MLFLOW_ALLOWED_HOSTS:+,$MLFLOW_ALLOWED_HOSTS}"
