#!/usr/bin/env bash
# try.sh (`make try`): everything needed to try `docker hangar load` by hand,
# kept until you stop it: builds the plugin, installs it into a temporary
# DOCKER_CONFIG (never ~/.docker), writes a generated Hangar archive and
# starts a throwaway registry on loopback (in memory), then prints the
# commands to paste into another terminal and waits. Ctrl-C stops the
# registry and removes everything.
#
# Environment: GO (default go), TRY_PORT (default 5000; 0 picks a free one).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
PORT=${TRY_PORT:-5000}

die() {
	printf 'try.sh: error: %s\n' "$*" >&2
	exit 1
}
command -v "$GO" >/dev/null 2>&1 || die "Go is needed ($GO not found)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hangar-try.XXXXXX")
REG_PID=""
cleanup() {
	if [[ -n $REG_PID ]] && kill -0 "$REG_PID" 2>/dev/null; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	echo
	echo "stopped the registry and removed $TMP"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

make --no-print-directory build GO="$GO" >/dev/null
CGO_ENABLED=0 "$GO" build -trimpath -o "$TMP/tools/" ./internal/cmd/hangar-registry ./internal/cmd/hangar-mkarchive
mkdir -p "$TMP/docker-config/cli-plugins"
install -m 0755 bin/docker-hangar "$TMP/docker-config/cli-plugins/docker-hangar"
"$TMP/tools/hangar-mkarchive" -o "$TMP/demo-images.zip"

"$TMP/tools/hangar-registry" serve -addr "127.0.0.1:$PORT" -addr-file "$TMP/registry.addr" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do # up to 10 s
	[[ -s $TMP/registry.addr ]] && break
	kill -0 "$REG_PID" 2>/dev/null || {
		cat "$TMP/registry.log" >&2
		die "the registry did not start (is port $PORT taken? TRY_PORT=0 picks a free one)"
	}
	sleep 0.1
done
[[ -s $TMP/registry.addr ]] || die "the registry did not listen within 10 s"
REGISTRY=$(<"$TMP/registry.addr")

cat <<EOT

A registry is listening on http://$REGISTRY (in memory) and a demo archive
is at $TMP/demo-images.zip. In another terminal:

  export DOCKER_CONFIG=$TMP/docker-config
  cd $TMP
  docker hangar load -s demo-images.zip -d $REGISTRY
  docker hangar load -s demo-images.zip -d $REGISTRY   # again: nothing to do
  docker hangar load validate -s demo-images.zip -d $REGISTRY
  docker hangar load -s demo-images.zip -d $REGISTRY --progress=json --dry-run
  $TMP/tools/hangar-registry state http://$REGISTRY   # what landed

Press Ctrl-C here to stop the registry and remove everything.
EOT
wait "$REG_PID"
