#!/usr/bin/env bash
# Passes `go test -v` output through and closes with one line counting the
# tests (subtests included): "N passed, N failed, N skipped".
set -uo pipefail
awk '
  { print; fflush() }
  /^ *--- PASS: / { pass++ }
  /^ *--- FAIL: / { fail++ }
  /^ *--- SKIP: / { skip++ }
  END { printf "tests: %d passed, %d failed, %d skipped\n", pass, fail, skip }
'
