#!/usr/bin/env bash
# A head and N worker nodes on this one machine, for multi-node tests (started one after
# another: parallel `ray start` on one host can collide on ports, ray #10154).
#   infra/ray/local_cluster.sh start 2 && orchestrator run experiment=demo cluster.address=auto
#   infra/ray/local_cluster.sh stop
set -euo pipefail
case "${1:-start}" in
  start)
    ray start --head --node-ip-address 127.0.0.1 --port "${RAY_PORT:-6380}" --num-cpus 1 --include-dashboard false
    for _ in $(seq 1 "${2:-1}"); do
      ray start --address "127.0.0.1:${RAY_PORT:-6380}" --num-cpus 1
    done
    ;;
  stop) ray stop --force ;;
esac
