#!/usr/bin/env bash
# The steps of the GitHub Action (action.yml), one subcommand each, so they run anywhere: the
# workflow gives them GITHUB_OUTPUT, GITHUB_ENV and GITHUB_PATH, and tests/package/action_test.py
# gives them files of its own. Inputs come as INPUT_* variables, as action.yml passes them.
#   scripts/action.sh build-key    key and prefix of the cached build (outputs key, prefix)
#   scripts/action.sh install      build and install hfwarm from this checkout into the prefix,
#                                  unless the restored build cache holds it; adds it to PATH
#   scripts/action.sh cache-key    key and folder of the model cache (outputs cache-key, cache-dir)
#   scripts/action.sh warm         once: download everything, fail when a required entry failed;
#                                  sidecar: start hfwarmd in the background (export HFWARM_SOCKET);
#                                  then export HF_HUB_CACHE and, with offline, the offline switches
set -euo pipefail
source "$(dirname "$0")/common.sh"

# Packages the programs need to build (no tests), by the names of Debian 12 or of Ubuntu.
build_packages() {
    local packages=(meson ninja-build g++ pkg-config libssl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
        libcli11-dev scdoc)
    if apt-cache show libboost1.81-dev >/dev/null 2>&1; then
        packages+=(libboost1.81-dev libboost-url1.81-dev)
    else
        packages+=(libboost-dev libboost-url-dev)
    fi
    printf '%s\n' "${packages[@]}"
}

need() { [ -n "${!1:-}" ] || die "$1 is not set: $2"; }
output() { printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; }

# What changes the built programs: the sources, the build files, the units and the man pages.
source_digest() {
    (cd "$HFWARM_ROOT" && find meson.build meson_options.txt include src config man systemd subprojects \
        -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

version() {
    sed -n "s/^  version: '\([^']*\)',\$/\1/p" "$HFWARM_ROOT/meson.build" | head -1
}

prefix_dir() {
    need RUNNER_TOOL_CACHE "the runner's tool cache folder"
    printf '%s/hfwarm/%s\n' "$RUNNER_TOOL_CACHE" "$(version)"
}

cmd_build_key() {
    need GITHUB_OUTPUT "run this as a step of a workflow"
    output key "hfwarm-build-${RUNNER_OS:-$(uname -s)}-$(uname -m)-$(version)-$(source_digest)"
    output prefix "$(prefix_dir)"
}

cmd_install() {
    need GITHUB_PATH "run this as a step of a workflow"
    local prefix
    prefix=$(prefix_dir)
    if "$prefix/bin/hfwarmd" --version >/dev/null 2>&1 && "$prefix/bin/hfwarmctl" --version >/dev/null 2>&1; then
        log "hfwarm $(version) restored from the build cache: $prefix"
    else
        mapfile -t packages < <(build_packages)
        install_packages "${packages[@]}"
        local build=${RUNNER_TEMP:-/tmp}/hfwarm-build
        log "building hfwarm $(version) into $prefix"
        meson setup "$build" "$HFWARM_ROOT" --prefix="$prefix" --buildtype=release -Dtests=false \
            --wrap-mode=default -Dsystemd_user_unit_dir="$prefix/lib/systemd/user" \
            -Dsystemd_system_unit_dir="$prefix/lib/systemd/system" || die "meson setup failed"
        ninja -C "$build" || die "the build failed"
        meson install -C "$build" --quiet || die "meson install failed"
    fi
    printf '%s\n' "$prefix/bin" >>"$GITHUB_PATH"
}

# The config hfwarmd reads: the input, else an empty one (defaults and the environment).
config_file() {
    if [ -n "${INPUT_CONFIG:-}" ]; then
        printf '%s\n' "$INPUT_CONFIG"
    else
        local empty=${RUNNER_TEMP:-/tmp}/hfwarm-action-config.json
        printf '{}\n' >"$empty"
        printf '%s\n' "$empty"
    fi
}

hfwarm_program() { command -v "$1" || printf '%s/bin/%s\n' "$(prefix_dir)" "$1"; }

# The cache root hfwarmd will fill, resolved as it resolves it.
cache_dir() {
    "$(hfwarm_program hfwarmctl)" env --format json --config "$(config_file)" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["env"]["HF_HUB_CACHE"])'
}

cmd_cache_key() {
    need GITHUB_OUTPUT "run this as a step of a workflow"
    need INPUT_MANIFEST "give the action its manifest input"
    local digest
    digest=$("$(hfwarm_program hfwarmctl)" cache-key "$INPUT_MANIFEST") || die "cannot compute the cache key of $INPUT_MANIFEST"
    output cache-key "hf-models-${RUNNER_OS:-$(uname -s)}-$digest"
    output cache-dir "$(cache_dir)"
}

cmd_warm() {
    need GITHUB_ENV "run this as a step of a workflow"
    need INPUT_MANIFEST "give the action its manifest input"
    local mode=${INPUT_MODE:-once} offline=${INPUT_OFFLINE:-true} hfwarmd hfwarmctl config dir
    case $mode in once | sidecar) ;; *) die "mode must be once or sidecar, got '$mode'" ;; esac
    case $offline in true | false) ;; *) die "offline must be true or false, got '$offline'" ;; esac
    hfwarmd=$(hfwarm_program hfwarmd)
    hfwarmctl=$(hfwarm_program hfwarmctl)
    config=$(config_file)
    dir=$(cache_dir)
    # The token goes to hfwarmd alone: masked in the log, never in GITHUB_ENV.
    if [ -n "${INPUT_TOKEN:-}" ]; then
        printf '::add-mask::%s\n' "$INPUT_TOKEN"
        export HF_TOKEN=$INPUT_TOKEN
    fi
    local args=(--config "$config" --manifest "$INPUT_MANIFEST" --cache-dir "$dir")
    if [ "$mode" = once ]; then
        "$hfwarmd" --once "${args[@]}" || die "hfwarmd --once failed (exit $?): see its summary above"
    else
        local run=${RUNNER_TEMP:-/tmp}
        local socket=$run/hfwarmd.sock
        nohup "$hfwarmd" "${args[@]}" --socket "$socket" >"$run/hfwarmd.log" 2>&1 &
        local pid=$!
        # The socket answers within milliseconds; a bad manifest ends hfwarmd instead (exit 2).
        until "$hfwarmctl" --socket "$socket" version >/dev/null 2>&1; do
            kill -0 "$pid" 2>/dev/null || { cat "$run/hfwarmd.log" >&2; die "hfwarmd exited before listening"; }
            sleep 0.1
        done
        log "hfwarmd is warming $dir in the background (pid $pid, log $run/hfwarmd.log); run hfwarmctl wait before the tests"
        printf 'HFWARM_SOCKET=%s\n' "$socket" >>"$GITHUB_ENV"
    fi
    unset HF_TOKEN
    if [ "$offline" = true ]; then
        "$hfwarmctl" env --format github --cache-dir "$dir" >>"$GITHUB_ENV"
    else
        printf 'HF_HUB_CACHE=%s\n' "$dir" >>"$GITHUB_ENV"
    fi
}

case ${1:-} in
    build-key) cmd_build_key ;;
    install) cmd_install ;;
    cache-key) cmd_cache_key ;;
    warm) cmd_warm ;;
    *) die "usage: scripts/action.sh build-key|install|cache-key|warm (see the top of this file)" ;;
esac
