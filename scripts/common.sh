# Shared by scripts/test, scripts/demo and bench/run: installs what is missing and builds.
# Sourced, not run.

HFWARM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HFWARM_BUILD=${HFWARM_BUILD:-$HFWARM_ROOT/build}

# Debian 12 packages the build needs (debian/control's Build-Depends list the same, checked by
# tests/package/deb_test.sh), then what the tests and the demo add.
HFWARM_BUILD_PACKAGES=(meson ninja-build g++ pkg-config cmake libssl-dev libboost1.81-dev libboost-url1.81-dev
    nlohmann-json3-dev libspdlog-dev libfmt-dev doctest-dev libcli11-dev scdoc)
HFWARM_PACKAGES=("${HFWARM_BUILD_PACKAGES[@]}" clang-format openssl ccache groff-base systemd redis-server nginx)
# Node.js may come from elsewhere (nodesource, nvm); take Debian's only when there is none.
command -v node >/dev/null 2>&1 || HFWARM_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || HFWARM_PACKAGES+=(npm)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (run as root or install sudo)"; fi
}

# Runs a command while Debian's maintainer scripts may not start services: nginx and redis-server
# start their system service when installed, and the tests run their own instances instead. A
# policy-rc.d that exits 101 refuses every start; one already in place (containers) is kept.
without_service_starts() {
    local policy=/usr/sbin/policy-rc.d status=0
    [ -e "$policy" ] && { "$@"; return; }
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" || return
    "$@" || status=$?
    as_root rm -f "$policy"
    return $status
}

install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! without_service_starts as_root apt-get install -y --no-install-recommends "${missing[@]}"; then
        as_root apt-get update &&
            without_service_starts as_root apt-get install -y --no-install-recommends "${missing[@]}" ||
            die "apt-get could not install: ${missing[*]}"
    fi
}

# Node packages for the interop tests, from the committed package.json and lock file.
install_node_packages() {
    local dir=$HFWARM_ROOT/tests/interop
    [ -f "$dir/package.json" ] || return 0
    if [ ! -d "$dir/node_modules/@huggingface/hub" ]; then
        log "installing npm packages in tests/interop"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $dir"
    fi
}

# Configures (once) and builds $HFWARM_BUILD; extra meson options are passed through.
build_hfwarm() {
    if [ ! -f "$HFWARM_BUILD/build.ninja" ]; then
        log "configuring $HFWARM_BUILD"
        meson setup "$HFWARM_BUILD" "$HFWARM_ROOT" --wrap-mode=nodownload --buildtype=debug -Dwerror=true "$@" ||
            die "meson setup failed"
    fi
    log "building"
    ninja -C "$HFWARM_BUILD" || die "build failed"
}

# Prints "N passed, N failed" over meson test logs (testlog.json), the line CI reads.
summarize_tests() {
    python3 - "$@" <<'PY'
import json, sys
passed = failed = 0
for log in sys.argv[1:]:
    for line in open(log):
        result = json.loads(line).get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result != "SKIP":
            failed += 1
print(f"{passed} passed, {failed} failed")
PY
}
