#!/usr/bin/env bash
# A Ray head and N worker nodes on this one machine, all bound to 127.0.0.1, for multi-node tests.
#
#   infra/ray/local_cluster.sh start [N]   # head (with dashboard / Jobs API) + N workers (default 2)
#   eval "$(infra/ray/local_cluster.sh env)"  # RAY_ADDRESS and the auth settings for clients in this shell
#   infra/ray/local_cluster.sh status      # `ray status` against this cluster
#   infra/ray/local_cluster.sh stop        # stops only this cluster's processes (never `ray stop`)
#
# Why it is written this way (Ray >= 2.52; checked with 2.60):
# - Token auth. `ray start --head` switches token auth on by itself when ~/.ray/auth_token exists (any local
#   `ray.init()` writes that file), but `ray start --address` for a worker does not, so workers were rejected.
#   Every node here is started with the same explicit RAY_AUTH_MODE, and in token mode (the default) with
#   the same per-cluster token file (RAY_AUTH_TOKEN_PATH, mode 0600, inside the cluster's folder).
#   LOCAL_CLUSTER_AUTH=disabled turns auth off for every node; the cluster then trusts every local user.
# - Isolation. Each cluster has its own folder (--temp-dir), so its processes can be told apart from any
#   other Ray on the machine: `stop` signals only processes whose command line names that folder (raylet,
#   GCS, dashboard, agents), their descendants (the workers, whose titles are rewritten to `ray::...`),
#   and the PIDs recorded at start that still name it. `ray stop` would kill every Ray process of the host.
# - Nodes start one after another: parallel `ray start` on one host can collide on ports (ray #10154).
#   Fixed ports (GCS, dashboard, client server, dashboard agents) are set explicitly so a second cluster or
#   a local `ray.init()` does not take them; the others are picked free by Ray.
#
# Settings (environment variables; defaults in brackets):
#   LOCAL_CLUSTER_GCS_PORT [6380]        GCS port of the head (the cluster address is 127.0.0.1:<port>)
#   LOCAL_CLUSTER_DASHBOARD_PORT [8265]  dashboard and Jobs API (http://127.0.0.1:<port>)
#   LOCAL_CLUSTER_CLIENT_PORT [10001]    Ray Client server (ray://127.0.0.1:<port>)
#   LOCAL_CLUSTER_AGENT_PORT [52365]     dashboard agent HTTP port of the head; worker i uses <port>+i
#   LOCAL_CLUSTER_WORKERS [2]            worker nodes (the positional N wins)
#   LOCAL_CLUSTER_HEAD_CPUS [1]          CPUs the head advertises
#   LOCAL_CLUSTER_WORKER_CPUS [1]        CPUs each worker advertises
#   LOCAL_CLUSTER_HEAD_GPUS [0]          GPUs the head advertises (all nodes share the machine's GPUs, so
#   LOCAL_CLUSTER_WORKER_GPUS [0]        GPUs each worker advertises   Ray's auto-detection would count them N+1 times)
#   LOCAL_CLUSTER_OBJECT_STORE_MB [512]  object store per node
#   LOCAL_CLUSTER_AUTH [token]           token | disabled
#   LOCAL_CLUSTER_DIR [/tmp/ray-local-<gcs port>]  temp dir, logs, state file, token; keep it short
#                                        (Unix socket paths below it must stay under 107 characters)
#   LOCAL_CLUSTER_PYTHON [python next to `ray`]  interpreter used for process bookkeeping (needs psutil)
set -Eeuo pipefail

GCS_PORT="${LOCAL_CLUSTER_GCS_PORT:-6380}"
DASHBOARD_PORT="${LOCAL_CLUSTER_DASHBOARD_PORT:-8265}"
CLIENT_PORT="${LOCAL_CLUSTER_CLIENT_PORT:-10001}"
AGENT_PORT="${LOCAL_CLUSTER_AGENT_PORT:-52365}"
HEAD_CPUS="${LOCAL_CLUSTER_HEAD_CPUS:-1}"
WORKER_CPUS="${LOCAL_CLUSTER_WORKER_CPUS:-1}"
HEAD_GPUS="${LOCAL_CLUSTER_HEAD_GPUS:-0}"
WORKER_GPUS="${LOCAL_CLUSTER_WORKER_GPUS:-0}"
OBJECT_STORE_MB="${LOCAL_CLUSTER_OBJECT_STORE_MB:-512}"
AUTH="${LOCAL_CLUSTER_AUTH:-token}"
DIR="${LOCAL_CLUSTER_DIR:-/tmp/ray-local-${GCS_PORT}}"
HOST=127.0.0.1
STATE="$DIR/cluster.env"
TOKEN_FILE="$DIR/auth_token"

die() { echo "local_cluster.sh: $*" >&2; exit 2; }

command -v ray >/dev/null || die "\`ray\` is not on PATH; activate the project's venv (pip install 'ray[default]')"
PY="${LOCAL_CLUSTER_PYTHON:-$(dirname "$(command -v ray)")/python}"
[ -x "$PY" ] || PY=python3

for v in GCS_PORT DASHBOARD_PORT CLIENT_PORT AGENT_PORT HEAD_CPUS WORKER_CPUS HEAD_GPUS WORKER_GPUS OBJECT_STORE_MB; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "LOCAL_CLUSTER_$v='${!v}' is not a non-negative integer; set it to a number or unset it"
done
# Ray's workers take ports 10002-19999 (its default range); a fixed port in there clashes with them.
for v in GCS_PORT DASHBOARD_PORT CLIENT_PORT AGENT_PORT; do
  if [ "${!v}" -ge 10002 ] && [ "${!v}" -le 19999 ]; then
    die "LOCAL_CLUSTER_$v=${!v} is in Ray's worker port range 10002-19999; pick a port outside it"
  fi
done
case "$AUTH" in token|disabled) ;; *) die "LOCAL_CLUSTER_AUTH='$AUTH' is not 'token' or 'disabled'" ;; esac
case "$DIR" in /*) ;; *) die "LOCAL_CLUSTER_DIR='$DIR' must be an absolute path" ;; esac

# Only this script's settings reach `ray start`: a RAY_AUTH_TOKEN or RAY_ADDRESS from the caller's shell
# would otherwise override the per-cluster token or the address.
unset RAY_AUTH_TOKEN RAY_ADDRESS
export RAY_USAGE_STATS_ENABLED=0
auth_env() {
  if [ "$AUTH" = token ]; then
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
  else
    export RAY_AUTH_MODE=disabled
    unset RAY_AUTH_TOKEN_PATH
  fi
}

# procs list|stop: this cluster's processes, found by the folder in their command line, plus descendants.
procs() {
  LOCAL_CLUSTER_GCS_PORT_FOR_PROCS="$GCS_PORT" "$PY" - "$1" "$DIR" "${2:-}" <<'PYEOF'
import importlib.util, os, sys
try:
    import psutil
except ImportError:  # Ray ships its own copy next to the package
    sys.path.insert(0, os.path.join(importlib.util.find_spec("ray").submodule_search_locations[0], "thirdparty_files"))
    import psutil

action, recorded = sys.argv[1], sys.argv[3]
folders = {sys.argv[2].rstrip("/"), os.path.realpath(sys.argv[2])}
folder = sys.argv[2]
me = {os.getpid(), os.getppid()}


def names_folder(p: psutil.Process) -> bool:
    """True if an argument is the folder or a path below it (not a sibling such as <folder>1/...)."""
    try:
        args = p.cmdline()
    except psutil.Error:
        return False
    if any(a == f or a.endswith("=" + f) or f + "/" in a for a in args for f in folders):
        return True
    # the head's Ray Client proxy names neither the folder nor a parent of ours: it is known by its GCS address
    gcs = os.environ.get("LOCAL_CLUSTER_GCS_PORT_FOR_PROCS", "")
    return bool(gcs) and "ray.util.client.server" in args and any(
        a.startswith("--address=") and a.endswith(":" + gcs) for a in args)


roots = [p for p in psutil.process_iter() if p.pid not in me and names_folder(p)]
for pid in filter(None, recorded.split(",")):
    try:
        p = psutil.Process(int(pid))
    except (psutil.Error, ValueError):
        continue
    if names_folder(p):  # a recycled PID of some other program no longer names the folder
        roots.append(p)
found = {}
for p in roots:
    found[p.pid] = p
    try:
        for c in p.children(recursive=True):
            found.setdefault(c.pid, c)
    except psutil.Error:
        pass
for pid in me:
    found.pop(pid, None)

if action == "list":
    print(",".join(str(pid) for pid in sorted(found)))
    sys.exit(0)


def name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


# As `ray stop` does: raylets first, GCS last, so the others do not see their peers vanish first.
buckets = [
    [p for p in found.values() if "raylet" in name(p)],
    [p for p in found.values() if "raylet" not in name(p) and "gcs_server" not in name(p)],
    [p for p in found.values() if "gcs_server" in name(p)],
]
left = []
for bucket in buckets:
    for p in bucket:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(bucket, timeout=5)
    left += alive
for p in left:
    try:
        p.kill()
    except psutil.Error:
        pass
_, alive = psutil.wait_procs(left, timeout=5)
print(f"stopped {len(found)} processes under {folder}" + (f"; {len(alive)} would not die" if alive else ""))
sys.exit(1 if alive else 0)
PYEOF
}

recorded_pids() { [ -f "$STATE" ] && sed -n 's/^PIDS=//p' "$STATE" || true; }

stop_cluster() {
  [ -d "$DIR" ] || { echo "no cluster folder $DIR: nothing to stop"; return 0; }
  procs stop "$(recorded_pids)"
  rm -f "$STATE" "$TOKEN_FILE"
}

wait_dashboard() {
  "$PY" - "http://$HOST:$DASHBOARD_PORT/api/version" <<'PYEOF'
import sys, time, urllib.error, urllib.request
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:  # it answers (401 without a token): it is up
        sys.exit(0)
    except OSError:
        if time.time() > deadline:
            sys.exit(f"the dashboard did not answer at {sys.argv[1]} within 60 s")
        time.sleep(0.5)
PYEOF
}

start_cluster() {
  local workers="$1"
  [[ "$workers" =~ ^[0-9]+$ ]] || die "worker count '$workers' is not a non-negative integer"
  local running
  running="$(procs list "$(recorded_pids)")"
  if [ -n "$running" ]; then
    die "a cluster is already running under $DIR; run '$0 stop' first (same LOCAL_CLUSTER_* settings)"
  fi
  mkdir -p "$DIR"
  if [ "$AUTH" = token ]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$TOKEN_FILE")
  fi
  auth_env
  # On any failure below, take down what was started (only this cluster's processes).
  trap 'echo "local_cluster.sh: start failed; stopping what it started" >&2; stop_cluster >&2' ERR

  local common=(--node-ip-address "$HOST" --temp-dir "$DIR" --object-store-memory $((OBJECT_STORE_MB * 1024 * 1024))
                --disable-usage-stats)
  ray start --head "${common[@]}" --port "$GCS_PORT" --num-cpus "$HEAD_CPUS" --num-gpus "$HEAD_GPUS" \
    --include-dashboard true --dashboard-host "$HOST" --dashboard-port "$DASHBOARD_PORT" \
    --ray-client-server-port "$CLIENT_PORT" --dashboard-agent-listen-port "$AGENT_PORT"
  for i in $(seq 1 "$workers"); do
    ray start --address "$HOST:$GCS_PORT" "${common[@]}" --num-cpus "$WORKER_CPUS" --num-gpus "$WORKER_GPUS" \
      --dashboard-agent-listen-port $((AGENT_PORT + i))
  done
  wait_dashboard
  trap - ERR

  {
    echo "GCS_ADDRESS=$HOST:$GCS_PORT"
    echo "DASHBOARD_URL=http://$HOST:$DASHBOARD_PORT"
    echo "CLIENT_ADDRESS=ray://$HOST:$CLIENT_PORT"
    echo "NODES=$((workers + 1))"
    echo "AUTH_MODE=$AUTH"
    [ "$AUTH" = token ] && echo "AUTH_TOKEN_PATH=$TOKEN_FILE"
    echo "TEMP_DIR=$DIR"
    echo "PIDS=$(procs list)"
  } >"$STATE"

  echo
  echo "Local Ray cluster: head + $workers worker(s) on $HOST, folder $DIR"
  echo "  GCS address:           $HOST:$GCS_PORT   (ray.init(address=...), ray start --address)"
  echo "  Dashboard / Jobs API:  http://$HOST:$DASHBOARD_PORT   (ray job submit --address ..., JobSubmissionClient)"
  echo "  Auth:                  $AUTH$([ "$AUTH" = token ] && echo " (token file $TOKEN_FILE)")"
  echo "  Clients in this shell: eval \"\$($0 env)\""
  echo "  Stop:                  $0 stop   (same LOCAL_CLUSTER_* settings)"
}

print_env() {
  [ -f "$STATE" ] || die "no running cluster recorded in $STATE; start one first"
  echo "export RAY_ADDRESS=http://$HOST:$DASHBOARD_PORT"
  if [ "$AUTH" = token ]; then
    echo "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_FILE"
  else
    echo "export RAY_AUTH_MODE=disabled"
  fi
}

case "${1:-start}" in
  start) start_cluster "${2:-${LOCAL_CLUSTER_WORKERS:-2}}" ;;
  stop) stop_cluster ;;
  env) print_env ;;
  status) auth_env; ray status --address "$HOST:$GCS_PORT" ;;
  *) die "unknown command '$1'; use start [N] | stop | env | status" ;;
esac
