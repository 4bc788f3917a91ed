#!/usr/bin/env bash
# Builds the sandbox's Kubernetes parts (and our dev tools) from Go modules
# pinned under hack/tools/<module>/go.mod, one at a time, into a cache outside
# the checkout keyed by tool, version and the pinning module's go.sum, then
# links them into bin/. A tool already in the cache is not rebuilt, so a fresh
# clone on a machine that built them before starts at once.
#
# Usage: hack/build-tools.sh [tool...]   (default: the sandbox tools)
# Env:   FLOTILLA_TOOLS_CACHE  cache folder (default $XDG_CACHE_HOME/flotilla/tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLOTILLA_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/tools}"
BIN="$ROOT/bin"
K8S_VERSION=v1.37.2

# name | module dir under hack/tools | package | version
TOOLS=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|v3.6.16"
  "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|$K8S_VERSION"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|$K8S_VERSION"
  "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|$K8S_VERSION"
  "kubectl|kubernetes|k8s.io/kubernetes/cmd/kubectl|$K8S_VERSION"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|v0.8.0"
  "controller-gen|controller-gen|sigs.k8s.io/controller-tools/cmd/controller-gen|v0.23.0"
  "golangci-lint|golangci-lint|github.com/golangci/golangci-lint/v2/cmd/golangci-lint|v2.15.0"
  "helm|helm|helm.sh/helm/v4/cmd/helm|v4.3.1"
)
SANDBOX_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

ldflags_for() {
  local name=$1 version=$2
  case $name in
  kube-*|kubectl)
    local minor=${version#v1.}; minor=${minor%%.*}
    local v
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
        "$v" "$version" "$v" "$v" "$minor" "$v"
    done
    ;;
  kwok)
    printf -- '-X sigs.k8s.io/kwok/pkg/consts.Version=%s ' "$version"
    ;;
  helm)
    printf -- '-X helm.sh/helm/v4/internal/version.version=%s ' "$version"
    ;;
  esac
}

build_one() {
  local want=$1 line name moddir pkg version
  for line in "${TOOLS[@]}"; do
    IFS='|' read -r name moddir pkg version <<<"$line"
    [[ $name == "$want" ]] || continue
    local sum key dir
    sum=$(cat "$ROOT/hack/tools/$moddir/go.mod" "$ROOT/hack/tools/$moddir/go.sum" | sha256sum | cut -c1-12)
    key="$name-$version-$(go env GOVERSION)-$sum"
    dir="$CACHE/$key"
    if [[ ! -x $dir/$name ]]; then
      echo ">> building $name $version (cache: $dir)" >&2
      local start=$SECONDS
      mkdir -p "$dir"
      # Plain `go build` flags, the same every time: the Go build cache then
      # shares compiled Kubernetes packages with the main module's builds.
      # A line every 30 s, so a long build (kube-apiserver: minutes) does
      # not look stuck.
      (while sleep 30; do echo ">> still building $name ($((SECONDS - start))s)" >&2; done) &
      local ticker=$! status=0
      (cd "$ROOT/hack/tools/$moddir" &&
        go build -ldflags "-s -w $(ldflags_for "$name" "$version")" \
          -o "$dir/$name.tmp" "$pkg") || status=$?
      kill "$ticker" 2>/dev/null || true
      wait "$ticker" 2>/dev/null || true
      if [[ $status -ne 0 ]]; then
        echo ">> building $name failed" >&2
        return "$status"
      fi
      mv "$dir/$name.tmp" "$dir/$name"
      echo ">> built $name in $((SECONDS - start))s" >&2
    fi
    mkdir -p "$BIN"
    ln -sfn "$dir/$name" "$BIN/$name"
    return 0
  done
  echo "unknown tool: $want" >&2
  return 1
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  echo ">> another tool build holds $CACHE/.lock; waiting for it" >&2
  flock 9
fi

if [[ $# -eq 0 ]]; then set -- "${SANDBOX_TOOLS[@]}"; fi
for t in "$@"; do build_one "$t"; done
