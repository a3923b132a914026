#!/usr/bin/env bash
# The Debian package: built with `dpkg-buildpackage -us -uc -b` from a clean copy of the tree, it is
# hfwarm_<version>_<arch>.deb; lintian reports no error; it holds the programs, the units, the man
# pages (gzipped), the example manifest and /etc/hfwarm/hfwarmd.json as a conffile; installed into
# a throwaway root (extracted, removed at the end), the programs run and `systemd-analyze verify`
# accepts the units. Run by .ci/run.
#   tests/package/deb_test.sh
# The copy is built in build-deb/ (ignored by git, removed at the end), at a fixed path so that
# ccache (base_dir=/work) serves a rebuild. DEB_BUILD_OPTIONS="nocheck parallel=2": the programs
# only (-Dtests=false); the suites run in scripts/test.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"

install_packages "${HFWARM_BUILD_PACKAGES[@]}" debhelper dpkg-dev lintian
cd "$HFWARM_ROOT"

fail() { printf 'deb_test: FAIL: %s\n' "$*" >&2; exit 1; }

# debian/control builds with what scripts/common.sh installs, no more, no less.
mapfile -t declared < <(python3 - debian/control <<'PY'
import re, sys
text = open(sys.argv[1]).read()
field = re.search(r"^Build-Depends:(.*?)^\S", text, re.S | re.M).group(1)
for item in field.split(","):
    name = item.split()[0] if item.split() else ""
    if name and name != "debhelper-compat":
        print(name)
PY
)
[ "$(printf '%s\n' "${declared[@]}" | sort)" = "$(printf '%s\n' "${HFWARM_BUILD_PACKAGES[@]}" | sort)" ] ||
    fail "debian/control Build-Depends (${declared[*]}) differ from HFWARM_BUILD_PACKAGES (${HFWARM_BUILD_PACKAGES[*]})"

version=$(meson introspect --projectinfo meson.build | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
changelog_version=$(dpkg-parsechangelog -S Version)
[ "$version" = "$changelog_version" ] || fail "meson.build says $version, debian/changelog says $changelog_version"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

work=$HFWARM_ROOT/build-deb
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/hfwarm" "$work/root"
# A clean clone of the working tree: the files git tracks (and new ones it does not ignore).
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$work/hfwarm"

# dh (compat 13) gives the build a HOME of its own, where ccache would find neither its config nor
# its cache: name both.
if command -v ccache >/dev/null 2>&1; then
    CCACHE_DIR=$(ccache -k cache_dir)
    CCACHE_BASEDIR=$(ccache -k base_dir)
    export CCACHE_DIR CCACHE_BASEDIR
fi

log "dpkg-buildpackage -us -uc -b (nocheck)"
started=$SECONDS
(cd "$work/hfwarm" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b) \
    > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "dpkg-buildpackage failed"; }
log "built in $((SECONDS - started)) s"
deb=$work/hfwarm_${version}_${arch}.deb
[ -f "$deb" ] || fail "no $deb; built: $(ls "$work")"

log "lintian"
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian reports errors on $deb"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')
for path in /usr/bin/hfwarmd /usr/bin/hfwarmctl \
    /usr/lib/systemd/user/hfwarmd.service /usr/lib/systemd/user/hfwarmd.socket \
    /usr/lib/systemd/system/hfwarmd@.service /etc/hfwarm/hfwarmd.json \
    /usr/share/man/man8/hfwarmd.8.gz /usr/share/man/man1/hfwarmctl.1.gz \
    /usr/share/doc/hfwarm/manifest.example.txt /usr/share/hfwarm/hfwarmd.json; do
    grep -qxF "$path" <<<"$contents" || fail "$deb lacks $path"
done
dpkg-deb -f "$deb" Package Version Architecture
conffiles=$(dpkg-deb -I "$deb" conffiles)
[ "$conffiles" = "/etc/hfwarm/hfwarmd.json" ] || fail "conffiles: expected /etc/hfwarm/hfwarmd.json, got: $conffiles"

log "installing into a throwaway root"
root=$work/root
dpkg-deb -x "$deb" "$root"
cmp "$root/etc/hfwarm/hfwarmd.json" config/hfwarmd.json || fail "/etc/hfwarm/hfwarmd.json is not config/hfwarmd.json"
gzip -t "$root/usr/share/man/man8/hfwarmd.8.gz" "$root/usr/share/man/man1/hfwarmctl.1.gz"
for program in hfwarmd hfwarmctl; do
    out=$("$root/usr/bin/$program" --version) || fail "$program --version exited $?"
    [ "$out" = "$program $version" ] || fail "$program --version printed '$out', expected '$program $version'"
done
grep -qx 'ExecStart=/usr/bin/hfwarmd' "$root/usr/lib/systemd/user/hfwarmd.service" ||
    fail "the user unit does not start /usr/bin/hfwarmd"
# systemd-analyze verify checks that ExecStart='s program exists, and this root is not the running
# system: the units are verified as installed but for that one path, pointed into the root (the
# lines above checked that they name /usr/bin/hfwarmd). The user manager's paths come from a
# private XDG_RUNTIME_DIR and HOME; any message fails the test, as in systemd_units_test.py.
units=$work/units
mkdir -p "$units/run" "$units/home"
for unit in user/hfwarmd.service user/hfwarmd.socket system/hfwarmd@.service; do
    sed "s|^ExecStart=/usr/bin/hfwarmd|ExecStart=$root/usr/bin/hfwarmd|" "$root/usr/lib/systemd/$unit" > "$units/$(basename "$unit")"
done
cp "$units/hfwarmd@.service" "$units/hfwarmd@runner.service"
verify() {
    local said
    said=$(XDG_RUNTIME_DIR=$units/run HOME=$units/home SYSTEMD_LOG_COLOR=0 systemd-analyze "$@" 2>&1) &&
        [ -z "$said" ] || fail "systemd-analyze $* said: $said"
}
verify --user verify --man=no "$units/hfwarmd.service" "$units/hfwarmd.socket"
verify verify --man=no "$units/hfwarmd@.service"
verify verify --man=no "$units/hfwarmd@runner.service"
log "ok: $(basename "$deb"), $(stat -c %s "$deb") bytes"
