#!/usr/bin/env bash
# Two thumbor processes (one per core) behind an nginx proxy, as one process tree so the
# benchmark counts their CPU and memory together. Stops them all on SIGTERM/SIGINT.
# Usage: thumbor_cluster.sh THUMBOR_BIN CONF PORT1 PORT2 LB_CONF
set -euo pipefail
thumbor="$1" conf="$2" port1="$3" port2="$4" lb_conf="$5"
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait || true; exit 0; }
trap stop TERM INT
for port in "$port1" "$port2"; do
    "$thumbor" --ip 127.0.0.1 --port "$port" --conf "$conf" --log-level warning &
    pids+=("$!")
done
nginx -p "$(dirname "$lb_conf")" -e "$(dirname "$lb_conf")/thumbor-lb-error.log" -c "$lb_conf" &
pids+=("$!")
wait -n || true
stop
