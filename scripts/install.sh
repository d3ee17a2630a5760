#!/bin/sh
# install.sh: install the docker hangar CLI plugin (docker-hangar) into the
# docker CLI plugins directory, from a release archive on disk (air-gapped
# machines) or from the GitHub releases of cnrancher/docker-hangar.
# Run `install.sh --help` for usage. POSIX sh; needs tar, and curl or wget
# only when it downloads.
set -eu

REPO="cnrancher/docker-hangar"
NAME="docker-hangar"

usage() {
	cat <<EOF
Usage: install.sh [OPTIONS]

Install the docker hangar CLI plugin ($NAME) for this machine's OS (linux,
darwin) and architecture (amd64, arm64), so that \`docker hangar load\` works.

Options:
  --from PATH       install from a local release archive
                    (${NAME}_<version>_<os>_<arch>.tar.gz), a bare $NAME
                    binary, or a directory holding the release archives;
                    nothing is downloaded (env: HANGAR_FROM)
  --version V       release to install, e.g. v0.2.0 or 0.2.0 (env: VERSION);
                    default: the latest release (GitHub API) or, with --from
                    DIR, the only matching archive in DIR
  --checksums FILE  sha256 checksums file to verify the archive against
                    (env: HANGAR_CHECKSUMS); default: the release's
                    ${NAME}_<version>_checksums.txt, downloaded or found next
                    to the archive. Downloads are always verified; a local
                    archive without a checksums file is installed with a
                    warning.
  --system          install for all users into $SYSTEM_DIR (needs root)
  --dir DIR         install into DIR instead (env: HANGAR_PLUGIN_DIR)
  --force           skip the check that the binary runs on this machine
  -h, --help        show this help

Default install directory: \${DOCKER_CONFIG:-\$HOME/.docker}/cli-plugins
Other environment: HANGAR_BASE_URL (release download URL prefix, default
https://github.com/$REPO/releases/download), GITHUB_TOKEN (optional, for
the GitHub API rate limit).

Examples:
  # air-gapped: archive and checksums file copied next to each other
  sh install.sh --from ./${NAME}_0.2.0_linux_amd64.tar.gz
  sh install.sh --from ./release-files/ --system
  # online
  curl -fsSL https://raw.githubusercontent.com/$REPO/main/scripts/install.sh | sh
  curl -fsSL https://raw.githubusercontent.com/$REPO/main/scripts/install.sh | VERSION=v0.2.0 sh
EOF
}

SYSTEM_DIR="/usr/local/lib/docker/cli-plugins"

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
	printf 'install.sh: error: %s\n' "$*" >&2
	exit 1
}

need_arg() {
	[ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

FROM="${HANGAR_FROM:-}"
WANT_VERSION="${VERSION:-}"
CHECKSUMS="${HANGAR_CHECKSUMS:-}"
PLUGIN_DIR="${HANGAR_PLUGIN_DIR:-}"
BASE_URL="${HANGAR_BASE_URL:-https://github.com/$REPO/releases/download}"
SYSTEM=0
FORCE=0

while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--from)
		need_arg "$1" $#
		FROM="$2"
		shift 2
		;;
	--from=*)
		FROM="${1#*=}"
		shift
		;;
	--version)
		need_arg "$1" $#
		WANT_VERSION="$2"
		shift 2
		;;
	--version=*)
		WANT_VERSION="${1#*=}"
		shift
		;;
	--checksums)
		need_arg "$1" $#
		CHECKSUMS="$2"
		shift 2
		;;
	--checksums=*)
		CHECKSUMS="${1#*=}"
		shift
		;;
	--dir)
		need_arg "$1" $#
		PLUGIN_DIR="$2"
		shift 2
		;;
	--dir=*)
		PLUGIN_DIR="${1#*=}"
		shift
		;;
	--system)
		SYSTEM=1
		shift
		;;
	--force)
		FORCE=1
		shift
		;;
	*)
		die "unknown argument: $1 (see --help)"
		;;
	esac
done

# --- platform -------------------------------------------------------------

case "$(uname -s)" in
Linux) OS=linux ;;
Darwin) OS=darwin ;;
*) die "unsupported OS $(uname -s): on Windows unzip ${NAME}_<version>_windows_<arch>.zip into %USERPROFILE%\\.docker\\cli-plugins" ;;
esac
case "$(uname -m)" in
x86_64 | amd64) ARCH=amd64 ;;
aarch64 | arm64 | armv8*) ARCH=arm64 ;;
*) die "unsupported architecture $(uname -m): release binaries exist for amd64 and arm64" ;;
esac

# the archive version has no leading v (goreleaser's .Version); tags have one
WANT_VERSION="${WANT_VERSION#v}"
[ "$WANT_VERSION" != latest ] || WANT_VERSION=""

TMP="$(mktemp -d "${TMPDIR:-/tmp}/docker-hangar-install.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | awk '{print $1}'
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | awk '{print $1}'
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 "$1" | awk '{print $NF}'
	else
		return 1
	fi
}

# verify FILE NAME SUMS: FILE's sha256 must be NAME's line in checksums file SUMS
verify() {
	v_want="$(awk -v f="$2" '$2 == f || $2 == "*" f { print $1; exit }' "$3")"
	[ -n "$v_want" ] || die "no checksum for $2 in $3"
	v_got="$(sha256_of "$1")" || die "no sha256 tool (sha256sum, shasum or openssl) to verify $2"
	v_want="$(printf '%s' "$v_want" | tr 'A-F' 'a-f')"
	[ "$v_got" = "$v_want" ] || die "sha256 mismatch for $2: got $v_got, want $v_want (from $3)"
	say "sha256 OK: $2"
}

fetch() { # fetch URL DEST
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die "need curl or wget to download $1 (or use --from with a local archive)"
	fi
}

latest_version() {
	l_url="https://api.github.com/repos/$REPO/releases/latest"
	if command -v curl >/dev/null 2>&1; then
		if [ -n "${GITHUB_TOKEN:-}" ]; then
			curl -fsSL -H "Authorization: Bearer $GITHUB_TOKEN" "$l_url"
		else
			curl -fsSL "$l_url"
		fi
	elif command -v wget >/dev/null 2>&1; then
		if [ -n "${GITHUB_TOKEN:-}" ]; then
			wget -q -O - --header "Authorization: Bearer $GITHUB_TOKEN" "$l_url"
		else
			wget -q -O - "$l_url"
		fi
	else
		die "need curl or wget to find the latest release (or set VERSION, or use --from)"
	fi | sed -n 's/.*"tag_name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1
}

# --- get the archive or binary --------------------------------------------

ARCHIVE="" # path of the archive (or bare binary) to install from
SUMS=""    # checksums file to verify it against, if any

if [ -n "$CHECKSUMS" ]; then
	[ -f "$CHECKSUMS" ] || die "checksums file not found: $CHECKSUMS"
	SUMS="$CHECKSUMS"
fi

if [ -n "$FROM" ]; then
	if [ -d "$FROM" ]; then
		pattern="${NAME}_${WANT_VERSION:-*}_${OS}_${ARCH}.tar.gz"
		found=""
		count=0
		for f in "$FROM"/$pattern; do
			[ -f "$f" ] || continue
			found="$f"
			count=$((count + 1))
		done
		[ "$count" -gt 0 ] || die "no $pattern in $FROM"
		[ "$count" -eq 1 ] || die "several archives match $pattern in $FROM: pick one with --version or --from FILE"
		ARCHIVE="$found"
	elif [ -f "$FROM" ]; then
		ARCHIVE="$FROM"
	else
		die "--from: no such file or directory: $FROM"
	fi
	base="$(basename "$ARCHIVE")"
	case "$base" in
	"${NAME}"_*_*_*.tar.gz | "${NAME}"_*_*_*.tgz | "${NAME}"_*_*_*.zip)
		stem="${base%.tar.gz}"
		stem="${stem%.tgz}"
		stem="${stem%.zip}"
		a_arch="${stem##*_}"
		rest="${stem%_*}"
		a_os="${rest##*_}"
		a_version="${rest%_*}"
		a_version="${a_version#"${NAME}"_}"
		if [ "$a_os/$a_arch" != "$OS/$ARCH" ] && [ "$FORCE" -eq 0 ]; then
			die "$base is for $a_os/$a_arch, this machine is $OS/$ARCH (use the ${NAME}_${a_version}_${OS}_${ARCH} archive, or --force)"
		fi
		if [ -z "$SUMS" ]; then
			dir="$(dirname "$ARCHIVE")"
			for c in "$dir/${NAME}_${a_version}_checksums.txt" "$dir/checksums.txt" "$dir/SHA256SUMS"; do
				if [ -f "$c" ]; then
					SUMS="$c"
					break
				fi
			done
		fi
		;;
	*) ;; # a bare binary, or a renamed archive: no name to check
	esac
	if [ -n "$SUMS" ]; then
		verify "$ARCHIVE" "$base" "$SUMS"
	else
		warn "no checksums file for $base: not verified (pass --checksums FILE)"
	fi
else
	if [ -z "$WANT_VERSION" ]; then
		tag="$(latest_version)" || true
		[ -n "$tag" ] || die "could not find the latest release of $REPO (set VERSION, or use --from)"
		WANT_VERSION="${tag#v}"
	fi
	base="${NAME}_${WANT_VERSION}_${OS}_${ARCH}.tar.gz"
	say "downloading $base"
	fetch "$BASE_URL/v$WANT_VERSION/$base" "$TMP/$base" || die "download failed: $BASE_URL/v$WANT_VERSION/$base"
	ARCHIVE="$TMP/$base"
	if [ -z "$SUMS" ]; then
		SUMS="$TMP/${NAME}_${WANT_VERSION}_checksums.txt"
		fetch "$BASE_URL/v$WANT_VERSION/${NAME}_${WANT_VERSION}_checksums.txt" "$SUMS" ||
			die "could not download the checksums file for v$WANT_VERSION"
	fi
	verify "$ARCHIVE" "$base" "$SUMS"
fi

# --- extract --------------------------------------------------------------

case "$ARCHIVE" in
*.tar.gz | *.tgz)
	mkdir "$TMP/x"
	gzip -dc "$ARCHIVE" | tar -xf - -C "$TMP/x" || die "could not extract $ARCHIVE"
	BIN=""
	for f in "$TMP/x/$NAME" "$TMP/x"/*/"$NAME"; do
		if [ -f "$f" ]; then
			BIN="$f"
			break
		fi
	done
	[ -n "$BIN" ] || die "$ARCHIVE holds no $NAME binary"
	;;
*.zip)
	command -v unzip >/dev/null 2>&1 || die "need unzip for $ARCHIVE"
	mkdir "$TMP/x"
	unzip -q "$ARCHIVE" -d "$TMP/x" || die "could not extract $ARCHIVE"
	BIN="$TMP/x/$NAME"
	[ -f "$BIN" ] || die "$ARCHIVE holds no $NAME binary"
	;;
*)
	BIN="$ARCHIVE" # a bare binary
	;;
esac

chmod 755 "$BIN" 2>/dev/null || true
if [ "$FORCE" -eq 0 ]; then
	meta="$("$BIN" docker-cli-plugin-metadata 2>/dev/null)" ||
		die "$BIN does not run on this machine ($OS/$ARCH): wrong archive? (--force installs it anyway)"
	case "$meta" in
	*SchemaVersion*) ;;
	*) die "$BIN is not a docker CLI plugin (no metadata)" ;;
	esac
fi

# --- install --------------------------------------------------------------

if [ -z "$PLUGIN_DIR" ]; then
	if [ "$SYSTEM" -eq 1 ]; then
		PLUGIN_DIR="$SYSTEM_DIR"
	else
		PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
	fi
fi
mkdir -p "$PLUGIN_DIR" || die "cannot create $PLUGIN_DIR (for --system, run as root)"
DEST="$PLUGIN_DIR/$NAME"
# copy next to the target, then rename: a running docker never sees half a file
cp "$BIN" "$DEST.tmp.$$" || die "cannot write to $PLUGIN_DIR (for --system, run as root)"
chmod 755 "$DEST.tmp.$$"
mv -f "$DEST.tmp.$$" "$DEST"
say "installed $DEST"

# --- confirm --------------------------------------------------------------

version="$("$DEST" docker-cli-plugin-metadata 2>/dev/null |
	sed -n 's/.*"Version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)" || true
[ -z "$version" ] || say "docker hangar version $version"

if command -v docker >/dev/null 2>&1; then
	# `docker <unknown> --version` prints docker's own version: look for ours
	seen="$(docker hangar --version 2>/dev/null | sed -n 's/^hangar version //p' | head -n 1)" || true
	if [ -z "$seen" ]; then
		warn "docker does not find the plugin: it looks in \${DOCKER_CONFIG:-~/.docker}/cli-plugins and $SYSTEM_DIR (this install went to $PLUGIN_DIR)"
	elif [ -n "$version" ] && [ "$seen" != "$version" ]; then
		warn "docker runs another docker-hangar (version $seen) that shadows this one: the one in \${DOCKER_CONFIG:-~/.docker}/cli-plugins comes first"
	else
		say ""
		say "\$ docker hangar load --help"
		docker hangar load --help 2>&1 | head -n 3
	fi
else
	say "docker CLI not found: run it standalone as $DEST load --help"
fi
