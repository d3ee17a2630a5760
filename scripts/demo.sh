#!/usr/bin/env bash
# demo.sh (`make demo`): build the plugin, generate a small Hangar archive,
# start a throwaway registry on loopback, run `docker hangar load` and
# `docker hangar load validate` against it through the docker CLI, and print
# what landed in the registry.
#
# Nothing outside a temporary directory is touched: the plugin is installed
# into a temporary DOCKER_CONFIG (never ~/.docker), and the registry (in
# memory) is stopped on exit, whatever happens. No docker engine is needed;
# without the docker CLI the plugin binary runs standalone.
#
# Environment: GO (default go).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

say() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'demo.sh: error: %s\n' "$*" >&2
	exit 1
}

command -v "$GO" >/dev/null 2>&1 || die "Go is needed to build the demo ($GO not found)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hangar-demo.XXXXXX")
REG_PID=""
cleanup() {
	local status=$?
	if [[ -n $REG_PID ]] && kill -0 "$REG_PID" 2>/dev/null; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Building bin/docker-hangar and the demo tools"
make --no-print-directory build GO="$GO"
CGO_ENABLED=0 "$GO" build -trimpath -o "$TMP/tools/" ./internal/cmd/hangar-registry ./internal/cmd/hangar-mkarchive

say "Starting a throwaway registry on loopback (in memory)"
"$TMP/tools/hangar-registry" serve -addr 127.0.0.1:0 -addr-file "$TMP/registry.addr" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do # up to 10 s
	[[ -s $TMP/registry.addr ]] && break
	kill -0 "$REG_PID" 2>/dev/null || {
		cat "$TMP/registry.log" >&2
		die "the registry did not start"
	}
	sleep 0.1
done
[[ -s $TMP/registry.addr ]] || die "the registry did not listen within 10 s"
REGISTRY=$(<"$TMP/registry.addr")
echo "registry: http://$REGISTRY (pid $REG_PID)"

say "Generating a demo archive"
ARCHIVE=$TMP/demo-images.zip
"$TMP/tools/hangar-mkarchive" -o "$ARCHIVE"

export DOCKER_CONFIG=$TMP/docker-config
mkdir -p "$DOCKER_CONFIG/cli-plugins"
install -m 0755 bin/docker-hangar "$DOCKER_CONFIG/cli-plugins/docker-hangar"
if command -v docker >/dev/null 2>&1; then
	HANGAR=(docker hangar)
	echo "plugin installed into the temporary DOCKER_CONFIG=$DOCKER_CONFIG"
	docker hangar --version
else
	HANGAR=(bin/docker-hangar)
	echo "the docker CLI is not installed: running bin/docker-hangar standalone instead of 'docker hangar'"
fi

say "${HANGAR[*]} load -s $(basename "$ARCHIVE") -d $REGISTRY"
"${HANGAR[@]}" load -s "$ARCHIVE" -d "$REGISTRY" -o "$TMP/load-failed.txt" --report "$TMP/report.json"

say "${HANGAR[*]} load validate -s $(basename "$ARCHIVE") -d $REGISTRY"
"${HANGAR[@]}" load validate -s "$ARCHIVE" -d "$REGISTRY" -o "$TMP/validate-failed.txt"

say "What landed in the registry (tag, digest, media type)"
"$TMP/tools/hangar-registry" state "http://$REGISTRY"

say "Demo done: stopping the registry and removing $TMP"
