#!/usr/bin/env bash
# Submit a study to a running Ray cluster as a Ray job: the driver (python -m study.run) runs on the
# head node, the trials on any node, MLflow is written by the driver only.
#
# Usage: deploy/ray_job_submit.sh [SPACE] [extra study.run options...]
#   env: RAY_HEAD (host of the head node), RAY_DASHBOARD_PORT (its dashboard/job server's port, 8265)
#        MLFLOW_URI (the tracking server, see deploy/mlflow_server.sh)
#        STORAGE (Tune's checkpoints and results: a file system every node mounts at the same path,
#                 or s3://bucket/path / gs://bucket/path)
#        RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH / ~/.ray/auth_token: the cluster's token (see below)
# Example: RAY_HEAD=head-0 MLFLOW_URI=http://mlflow:5000 STORAGE=/shared/gan-study \
#          deploy/ray_job_submit.sh balance.yaml --gpus-per-trial 0.25
set -euo pipefail

SPACE="${1:-balance.yaml}"
shift || true
RAY_HEAD="${RAY_HEAD:?set RAY_HEAD to the host name of the head node}"
MLFLOW_URI="${MLFLOW_URI:?set MLFLOW_URI, e.g. http://mlflow:5000}"
STORAGE="${STORAGE:?set STORAGE to a shared path or s3:// / gs:// URI}"

# Ray token authentication, on by default: the job server refuses a submission without the cluster's
# token (HTTP 401, 403 for a wrong one). The token, as Ray looks for it: RAY_AUTH_TOKEN, else the file
# named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (`ray get-auth-token` on the head prints it;
# deploy/slurm_study.sbatch says where its token is). Only the submission carries it: the driver runs on
# the head and has the cluster's own. `ray job logs` / `ray job stop` need the same RAY_AUTH_* settings.
# RAY_AUTH_MODE=disabled submits without a token, to a cluster that runs without authentication.
auth_mode="${RAY_AUTH_MODE:-token}"
case "${auth_mode,,}" in
disabled)
    echo "Ray token authentication is OFF: RAY_AUTH_MODE=disabled, submitting without a token (only a cluster that runs anyone's code accepts it)" >&2
    export RAY_AUTH_MODE=disabled ;;
token)
    export RAY_AUTH_MODE=token
    if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then
        :
    elif [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
        if [[ ! -r "$RAY_AUTH_TOKEN_PATH" || ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
            echo "ray_job_submit.sh: RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is not a readable, non-empty token file" >&2
            exit 2
        fi
    elif [[ ! -s "${HOME:-~}/.ray/auth_token" ]]; then
        echo "ray_job_submit.sh: no Ray auth token: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding the cluster's token, or put it in ~/.ray/auth_token (RAY_AUTH_MODE=disabled submits without one)" >&2
        exit 2
    fi ;;
*)
    echo "ray_job_submit.sh: RAY_AUTH_MODE must be token (the default) or disabled, not '$RAY_AUTH_MODE'" >&2
    exit 2 ;;
esac

# --working-dir . uploads this checkout (study/, gan/, search_spaces/) and puts it first on the
# PYTHONPATH of the driver and of every trial worker: the cluster's image needs only the
# dependencies (pip install -e . once per image, or add "pip" to the runtime env). The excludes keep
# local results and virtual environments out of the upload (limit: 100 MiB).
# The driver finds the cluster through RAY_ADDRESS, which the job server sets: no --address needed.
# --no-wait returns at once; follow with `ray job logs -f JOB_ID`, stop with `ray job stop JOB_ID`
# (the driver then gets SIGTERM, stops the trials, saves the study; continue it with --resume).
# RAY_JOB_STOP_WAIT_TIME_S: how long `ray job stop` lets the driver save before SIGKILL (Ray's default, 3 s,
# kills it while Tune saves; the job supervisor reads it from the job's env_vars).
exec ray job submit \
    --address "http://$RAY_HEAD:${RAY_DASHBOARD_PORT:-8265}" \
    --working-dir . \
    --runtime-env-json '{"excludes": [".git", ".venv", "ray_results", "mlartifacts", "mlflow.db", "*.pt"],
                         "env_vars": {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                                      "RAY_JOB_STOP_WAIT_TIME_S": "120"}}' \
    --no-wait \
    -- python -m study.run --space "$SPACE" \
        --storage-path "$STORAGE" \
        --tracking-uri "$MLFLOW_URI" \
        "$@"
