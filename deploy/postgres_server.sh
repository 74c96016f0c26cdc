#!/usr/bin/env bash
# A PostgreSQL server for the MLflow tracking server of a cluster (deploy/mlflow_server.sh), on the host
# that runs it: its own database cluster in PG_DIR, a role and a database "mlflow", a password kept in
# PG_DIR/mlflow_password (mode 600). A managed PostgreSQL (RDS, Cloud SQL, the site's) does the same job:
# give its URI to mlflow_server.sh as MLFLOW_BACKEND.
#
# Usage: deploy/postgres_server.sh start PG_DIR [PORT]   # prints the backend URI on stdout
#        deploy/postgres_server.sh stop PG_DIR
# Needs: PostgreSQL's server programs (Debian/Ubuntu: apt-get install postgresql; initdb and pg_ctl are
# found in /usr/lib/postgresql/*/bin) and, for MLflow, pip install psycopg2-binary.
# PostgreSQL refuses to run as root: started by root, the server runs as the user "postgres", which must be
# able to reach PG_DIR (not under a folder only root can enter, such as /root or pytest's tmp folders).
#
#     MLFLOW_BACKEND="$(deploy/postgres_server.sh start /srv/mlflow-pg)" deploy/mlflow_server.sh /srv/mlflow
set -euo pipefail
umask 077

command="${1:?usage: postgres_server.sh start|stop PG_DIR [PORT]}"
PG_DIR="${2:?usage: postgres_server.sh start|stop PG_DIR [PORT]}"
PORT="${3:-5432}"
bin_dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"  # Debian keeps them off PATH
[[ -x "$bin_dir/pg_ctl" ]] || bin_dir="$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")"
if [[ ! -x "$bin_dir/pg_ctl" || ! -x "$bin_dir/initdb" ]]; then
    echo "postgres_server.sh: PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)" >&2
    exit 2
fi
as_postgres=()
if [[ "$(id -u)" == 0 ]]; then as_postgres=(runuser -u postgres --); fi

mkdir -p "$PG_DIR"
PG_DIR="$(cd "$PG_DIR" && pwd)"
data="$PG_DIR/data"
pg_ctl() { "${as_postgres[@]}" "$bin_dir/pg_ctl" -D "$data" "$@"; }

case "$command" in
stop)
    pg_ctl stop -m fast -w >/dev/null
    ;;
start)
    if [[ ${#as_postgres[@]} -gt 0 ]]; then
        chown postgres: "$PG_DIR"
        if ! "${as_postgres[@]}" test -w "$PG_DIR"; then
            echo "postgres_server.sh: the user postgres cannot reach $PG_DIR (a parent folder is closed to it)" >&2
            exit 2
        fi
    fi
    if [[ ! -f "$data/PG_VERSION" ]]; then
        python3 -c "import secrets; print(secrets.token_urlsafe(18))" > "$PG_DIR/mlflow_password"
        # the superuser only through the server's own socket (in PG_DIR), everything over TCP with a password
        "${as_postgres[@]}" "$bin_dir/initdb" -D "$data" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 >"$PG_DIR/initdb.log"
        fresh=1
    fi
    # listen on loopback and this host's addresses; add the cluster's network to pg_hba.conf to reach it
    # from elsewhere (the MLflow server usually runs on this host and is the only client)
    pg_ctl -l "$PG_DIR/postgres.log" -w -o "-p $PORT -k $PG_DIR -c listen_addresses=${PG_LISTEN:-localhost}" \
        start >/dev/null
    password="$(cat "$PG_DIR/mlflow_password")"
    if [[ -n "${fresh:-}" ]]; then
        "${as_postgres[@]}" "$(command -v "$bin_dir/psql" || command -v psql)" -q -h "$PG_DIR" -p "$PORT" -U postgres -d postgres \
            -v ON_ERROR_STOP=1 -c "CREATE ROLE mlflow LOGIN PASSWORD '$password'" \
            -c "CREATE DATABASE mlflow OWNER mlflow" >/dev/null
    fi
    # +psycopg2: SQLAlchemy >= 2.1 would otherwise look for psycopg 3
    echo "postgresql+psycopg2://mlflow:$password@127.0.0.1:$PORT/mlflow"
    ;;
*)
    echo "postgres_server.sh: unknown command '$command' (start or stop)" >&2
    exit 2
    ;;
esac
