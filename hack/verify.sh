#!/usr/bin/env bash
# Fails when formatting, vet or module tidiness would change anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0

# Generated files must be what the generators make of the sources now.
generated=(config/crd config/rbac config/webhook pkg/apis charts/flotilla/crds charts/flotilla/files)
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
for d in "${generated[@]}"; do mkdir -p "$before/$d" "$d" && cp -a "$d/." "$before/$d/"; done
make --no-print-directory manifests generate >/dev/null
for d in "${generated[@]}"; do
  if ! diff -r "$before/$d" "$d" >/dev/null; then
    echo "generated files in $d were out of date; regenerated them (review and commit):" >&2
    diff -r "$before/$d" "$d" | head -40 >&2 || true
    fail=1
  fi
done
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [[ -n $unformatted ]]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  fail=1
fi

go vet ./... || fail=1

for mod in . hack/tools/*/; do
  if ! (cd "$mod" && go mod tidy -diff >/dev/null 2>&1); then
    echo "go mod tidy would change $mod/go.mod or go.sum:" >&2
    (cd "$mod" && go mod tidy -diff) >&2 || true
    fail=1
  fi
done

# The tool modules that share Kubernetes' libraries with Flotilla pin the
# same versions of them, so that a cold build compiles them once (README,
# "Sandbox binaries"): compare the go.mod requirements the modules share.
shared='^(k8s\.io/|sigs\.k8s\.io/(controller-runtime|json|yaml|structured-merge-diff)|golang\.org/x/(crypto|net|sys|term|text|sync|time|oauth2)|google\.golang\.org/|go\.opentelemetry\.io/|github\.com/prometheus/)'
# requires prints "path version" for every module a go.mod requires, with
# the version a replace directive gives it, if any.
requires() {
  awk '
    /^replace \(/ { block = "replace"; next }
    /^require \(/ { block = "require"; next }
    /^\)/ { block = ""; next }
    /^replace / { sub(/^replace /, ""); repl[$1] = $4; next }
    /^require / { sub(/^require /, ""); req[$1] = $2; next }
    block == "replace" && $2 == "=>" { repl[$1] = $4 }
    block == "require" && NF >= 2 { req[$1] = $2 }
    END { for (p in req) print p, (p in repl && repl[p] != "" ? repl[p] : req[p]) }
  ' "$1" | grep -E "$shared" | sort
}
for mod in hack/tools/kubernetes hack/tools/kwok hack/tools/helm; do
  drift=$(join <(requires go.mod) <(requires "$mod/go.mod") | awk -v m="$mod/go.mod" '$2 != $3 && $2 != "v0.0.0" && $3 != "v0.0.0" {print "  " $1 ": go.mod " $2 ", " m " " $3}')
  if [[ -n $drift ]]; then
    echo "$mod/go.mod pins other versions than go.mod of libraries they share (align them):" >&2
    echo "$drift" >&2
    fail=1
  fi
done

if [[ $fail -ne 0 ]]; then
  echo "verify: FAILED" >&2
  exit 1
fi
echo "verify: ok"
