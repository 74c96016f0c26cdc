#!/usr/bin/env bash
# The MLflow tracking server of a cluster study: runs and metrics in a database, artifacts (sample
# grids, the space file, reports) in a store the server proxies, so study drivers need only its URL,
# and MLflow's basic-auth app in front of all of it, so that only users with a password get in:
#
#     export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=...    # read by MLflow's client
#     python -m study.run --space balance.yaml --tracking-uri http://MLFLOW_HOST:5000 ...
#
# Usage: deploy/mlflow_server.sh [DATA_DIR]
#   env: MLFLOW_PORT (5000), MLFLOW_HOST (0.0.0.0), MLFLOW_BACKEND, MLFLOW_ARTIFACTS, MLFLOW_ALLOWED_HOSTS,
#        MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_AUTH_ADMIN_USERNAME (admin), MLFLOW_DEFAULT_PERMISSION (READ),
#        MLFLOW_FLASK_SERVER_SECRET_KEY, MLFLOW_AUTH (basic-auth | none)
#
#   MLFLOW_BACKEND    sqlite:///DATA_DIR/mlflow.db by default: one machine, one server worker (sqlite has one
#                     writer). On a cluster use PostgreSQL (pip install psycopg2-binary), with MLFLOW_WORKERS
#                     (default 4) server workers: postgresql://mlflow:PASSWORD@db-host:5432/mlflow, or one
#                     on this host from deploy/postgres_server.sh:
#                       MLFLOW_BACKEND="$(deploy/postgres_server.sh start /srv/mlflow-pg)" deploy/mlflow_server.sh /srv/mlflow
#   MLFLOW_ARTIFACTS  DATA_DIR/artifacts by default; s3://bucket/gan-study or gs://bucket/gan-study for
#                     object storage (the server holds the credentials, the clients never see them).
#
# Authentication (MLflow's basic-auth app, `mlflow server --app-name basic-auth`):
#   - Users and permissions live in DATA_DIR/basic_auth.db; this script writes DATA_DIR/basic_auth.ini
#     (MLflow reads it through MLFLOW_AUTH_CONFIG_PATH) on its first start.
#   - The admin user is created on the first start, with the password in MLFLOW_AUTH_ADMIN_PASSWORD; when
#     that is not set, a random one is generated into DATA_DIR/admin_password (readable by its owner only).
#     Later starts ignore it: change a password with MLflow's API (see README.md, "Security").
#   - MLFLOW_DEFAULT_PERMISSION: what a signed-in user may do with experiments others created
#     (READ, EDIT, MANAGE or NO_PERMISSIONS). Without a valid password every request gets 401.
#   - The Flask secret key (CSRF protection of the UI's forms) is kept in DATA_DIR/flask_secret_key.
#   - MLFLOW_AUTH_CACHE_TTL_S (60): each server worker remembers a password it has checked for this long (MLflow
#     >= 3.17, auth_cache_ttl_seconds; keyed by an HMAC, not the password). Without it every request pays a
#     deliberately slow password hash (~0.3 s of CPU here): a study of 200 short trials took 668 s instead of
#     ~100 s (bench/study_scale.py). A password changed through one worker takes up to this long to reach
#     the others; 0 turns the cache off.
#   - MLFLOW_AUTH=none starts the server without authentication: anyone who reaches the port can read and
#     delete every run. Use it only on a network nobody else is on.
# Basic auth sends the password with every request: put the server behind TLS (a reverse proxy) when the
# network between the drivers and the server is not trusted.
#
# The study driver survives a restart of this server: its writes wait in a queue (spooled to the Tune
# run directory) and are logged when the server answers again; `--resume` replays what is left.
set -euo pipefail
umask 077  # the database, the artifacts and the secrets below: readable by this user only

DATA_DIR="${1:-$PWD/mlflow-data}"
mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
PORT="${MLFLOW_PORT:-5000}"
HOST="${MLFLOW_HOST:-0.0.0.0}"
BACKEND="${MLFLOW_BACKEND:-sqlite:///$DATA_DIR/mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS:-$DATA_DIR/artifacts}"
AUTH="${MLFLOW_AUTH:-basic-auth}"
# sqlite allows one writer: keep one worker; PostgreSQL can take more.
WORKERS=1
[[ "$BACKEND" == sqlite:* ]] || WORKERS="${MLFLOW_WORKERS:-4}"
if [[ "$BACKEND" == postgresql://* ]]; then
    # SQLAlchemy >= 2.1 reads a bare postgresql:// as psycopg 3; this setup installs psycopg2
    BACKEND="postgresql+psycopg2://${BACKEND#postgresql://}"
fi
if [[ "$BACKEND" == postgresql+psycopg2://* ]] && ! python3 -c "import psycopg2" 2>/dev/null; then
    echo "mlflow_server.sh: a PostgreSQL backend needs psycopg2 in MLflow's environment: pip install psycopg2-binary" >&2
    exit 2
fi

app=()
if [[ "$AUTH" == basic-auth ]]; then
    if [[ ! -f "$DATA_DIR/basic_auth.ini" ]]; then
        cat > "$DATA_DIR/basic_auth.ini" <<EOF
[mlflow]
default_permission = ${MLFLOW_DEFAULT_PERMISSION:-READ}
database_uri = sqlite:///$DATA_DIR/basic_auth.db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_S:-60}
EOF
    fi
    export MLFLOW_AUTH_CONFIG_PATH="$DATA_DIR/basic_auth.ini"
    if [[ ! -f "$DATA_DIR/basic_auth.db" && -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]]; then
        [[ -f "$DATA_DIR/admin_password" ]] || python3 -c "import secrets; print(secrets.token_urlsafe(18))" \
            > "$DATA_DIR/admin_password"
        export MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$DATA_DIR/admin_password")"
        echo "mlflow_server.sh: the admin password is in $DATA_DIR/admin_password" >&2
    fi
    if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
        [[ -f "$DATA_DIR/flask_secret_key" ]] || python3 -c "import secrets; print(secrets.token_hex(32))" \
            > "$DATA_DIR/flask_secret_key"
        export MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$DATA_DIR/flask_secret_key")"
    fi
    app=(--app-name basic-auth)  # needs Flask-WTF: pip install 'mlflow[auth]' (or '.[server]' here)
elif [[ "$AUTH" != none ]]; then
    echo "mlflow_server.sh: MLFLOW_AUTH must be basic-auth or none, got '$AUTH'" >&2
    exit 2
fi

# --host 0.0.0.0: reachable from the cluster's nodes. MLflow >= 3.5 checks the Host header of every
# request against --allowed-hosts (default: localhost and private IPs only), so a driver that uses a
# host NAME (http://mlflow-host:5000) is refused unless that name is listed: add yours to
# MLFLOW_ALLOWED_HOSTS (comma-separated, wildcards allowed, e.g. "mlflow:*,mlflow.ml.svc:*").
HOSTS="localhost:*,127.0.0.1:*,$(hostname):*,$(hostname -f 2>/dev/null || hostname):*,10.*,192.168.*,172.*"
exec mlflow server "${app[@]}" \
    --backend-store-uri "$BACKEND" \
    --artifacts-destination "$ARTIFACTS" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" \
    --allowed-hosts "$HOSTS${MLFLOW_ALLOWED_HOSTS:+,$MLFLOW_ALLOWED_HOSTS}"
