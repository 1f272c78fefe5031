#!/usr/bin/env bash
# Starts/stops a Docker engine of our own for the `containers` provider (docs/backends.md),
# on its own socket, publishing container ports on 127.0.0.1 only.
# Usage: bash scripts/dockerd.sh start|stop|status
#   start  does nothing if an engine already answers on $DOCKER_HOST or on our socket;
#          prints the DOCKER_HOST to use. Needs `dockerd` (install-backends.sh --docker).
#   stop   stops only the engine this script started (by the pid in its pidfile).
set -euo pipefail
ROOT=${SEMAFORE_DOCKER_ROOT:-/tmp/semafore-docker}
SOCK=${SEMAFORE_DOCKER_SOCK:-/run/semafore-docker.sock}
PIDFILE=$ROOT/dockerd.pid
OUR_HOST=unix://$SOCK

answers() { DOCKER_HOST=$1 timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then echo "$DOCKER_HOST"; exit 0; fi
    if answers "$OUR_HOST"; then echo "$OUR_HOST"; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd: not installed (bash scripts/install-backends.sh --docker)" >&2; exit 1; }
    mkdir -p "$ROOT/data" "$ROOT/exec"
    t0=$SECONDS
    nohup dockerd --host="$OUR_HOST" --data-root="$ROOT/data" --exec-root="$ROOT/exec" \
      --pidfile="$PIDFILE" --ip=127.0.0.1 >"$ROOT/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do
      if answers "$OUR_HOST"; then
        echo "dockerd: ready on $OUR_HOST ($((SECONDS - t0)) s)" >&2
        echo "$OUR_HOST"; exit 0
      fi
      sleep 0.5
    done
    echo "dockerd: did not answer within 60 s; last log lines:" >&2
    tail -20 "$ROOT/dockerd.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      pid=$(cat "$PIDFILE")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  status)
    if answers "$OUR_HOST"; then echo "running: $OUR_HOST"; else echo "not running"; exit 1; fi
    ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
