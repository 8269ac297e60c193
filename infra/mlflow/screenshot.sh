#!/usr/bin/env bash
# Screenshot a page of a running MLflow UI in headless Chromium (docs, and checking what users see).
#   infra/mlflow/screenshot.sh 'http://127.0.0.1:5000/#/experiments/1' docs/img/mlflow-runs.png
set -euo pipefail
url=$1; out=$2
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --window-size=1500,950 --hide-scrollbars \
  --virtual-time-budget=15000 --screenshot="$out" "$url"
