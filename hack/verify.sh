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

if [[ $fail -ne 0 ]]; then
  echo "verify: FAILED" >&2
  exit 1
fi
echo "verify: ok"
