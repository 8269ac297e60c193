#!/usr/bin/env bash
# A tracking server for a team: SQLite (or a database URI) for runs, a folder or bucket for artifacts.
# Binds to 127.0.0.1 unless MLFLOW_HOST says otherwise; put a proxy with auth in front to expose it.
#   MLFLOW_BACKEND=postgresql://... MLFLOW_ARTIFACTS=s3://bucket/mlflow MLFLOW_HOST=0.0.0.0 infra/mlflow/serve.sh
set -euo pipefail
exec mlflow server \
  --backend-store-uri "${MLFLOW_BACKEND:-sqlite:///mlflow-server.db}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS:-./mlartifacts}" \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}"
