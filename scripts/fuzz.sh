#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of internal/httpapi for FUZZTIME (default 5s) against one
# throwaway PostgreSQL cluster; `go test -fuzz` takes one target at a time. Inputs that fail are
# saved under internal/httpapi/testdata/fuzz, where every `make test` replays them.
#
# A target that fails with "context deadline exceeded" and saves no failing input has not found
# a bug: Go's fuzzing coordinator can report the end of -fuzztime itself as that error when a
# worker is still busy at the deadline (go.dev/issue/75804, fixed in Go 1.27). Such a target is
# run once more, and the script fails only if that run fails too.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${FUZZTIME:-5s}
corpus=internal/httpapi/testdata/fuzz
dir=$(mktemp -d)
trap 'bash scripts/localpg.sh stop "$dir" || true; rm -rf "$dir"' EXIT
port=$(bash scripts/localpg.sh freeport)
TEST_DATABASE_URL=$(LOCALPG_FAST=1 bash scripts/localpg.sh start "$dir" "$port")
export TEST_DATABASE_URL

# fuzz runs target $1, showing its output and keeping it in $dir/fuzz.log.
fuzz() {
	go test ./internal/httpapi -run '^$' -fuzz "^$1\$" -fuzztime "$fuzztime" 2>&1 | tee "$dir/fuzz.log"
}

# saved prints how many failing inputs target $1 has saved.
saved() {
	local files=("$corpus/$1"/*)
	echo "${#files[@]}"
}

for target in $(go test ./internal/httpapi -list '^Fuzz' | grep '^Fuzz'); do
	before=$(saved "$target")
	if ! fuzz "$target"; then
		if [[ $(saved "$target") -ne $before ]] || ! tail -n 5 "$dir/fuzz.log" | grep -q 'context deadline exceeded'; then
			exit 1
		fi
		echo "fuzz.sh: $target: 'context deadline exceeded' and no failing input saved (go.dev/issue/75804): once more" >&2
		fuzz "$target"
	fi
	echo "fuzz.sh: $target: $(grep -o 'execs: [0-9]*' "$dir/fuzz.log" | tail -n 1) in $fuzztime"
done
