#!/usr/bin/env python3
"""The wraps in subprojects/ are usable: meson reads every one of them, and `meson subprojects
download` either fetches and verifies them (a machine with network) or fails for the network alone;
and each pins the version Debian 12 ships, so a fallback build matches the packaged one.

usage: wraps_test.py SOURCE_ROOT
"""

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

# wrap name -> (Debian 12 package, upstream version in the package's version string)
WRAPS = {
    "nlohmann_json": ("nlohmann-json3-dev", "3.11.2"),
    "spdlog": ("libspdlog-dev", "1.10.0"),
    "fmt": ("libfmt-dev", "9.1.0"),
    "cli11": ("libcli11-dev", "2.1.2"),
    "doctest": ("doctest-dev", "2.4.9"),
}


def fail(message):
    sys.exit("wraps: " + message)


def main():
    source = sys.argv[1]
    subprojects = os.path.join(source, "subprojects")
    found = sorted(n[:-5] for n in os.listdir(subprojects) if n.endswith(".wrap"))
    if found != sorted(WRAPS):
        fail(f"subprojects/ holds {found}, expected {sorted(WRAPS)}")

    wraps = {}
    for name, (package, version) in WRAPS.items():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(os.path.join(subprojects, name + ".wrap"))
        if parser.sections()[:1] != ["wrap-file"]:
            fail(f"{name}.wrap: first section is {parser.sections()[:1]}, expected [wrap-file]")
        wrap = parser["wrap-file"]
        for key in ("source_url", "source_filename", "source_hash"):
            if key not in wrap:
                fail(f"{name}.wrap: no {key}")
        if not re.fullmatch(r"[0-9a-f]{64}", wrap["source_hash"]):
            fail(f"{name}.wrap: source_hash is not a sha256: {wrap['source_hash']!r}")
        if version not in wrap["source_url"] or version not in wrap.get("directory", ""):
            fail(f"{name}.wrap: expected version {version} in source_url and directory")
        patch = wrap.get("patch_directory")
        if patch and not os.path.isfile(os.path.join(subprojects, "packagefiles", patch, "meson.build")):
            fail(f"{name}.wrap: patch_directory {patch} has no subprojects/packagefiles/{patch}/meson.build")
        if "provide" not in parser:
            fail(f"{name}.wrap: no [provide] section")
        # The version Debian 12 ships, where its package is installed (it is, under scripts/test).
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        if done.returncode == 0 and not re.match(r"^(\d+:)?" + re.escape(version) + r"[+~-]", done.stdout):
            fail(f"{name}.wrap pins {version}, but Debian's {package} is {done.stdout}")
        wraps[name] = wrap

    # meson itself reads every wrap and tries to fetch it, in a copy so nothing lands in the tree.
    with tempfile.TemporaryDirectory(prefix="wraps-test-") as tmp:
        shutil.copytree(subprojects, os.path.join(tmp, "subprojects"))
        with open(os.path.join(tmp, "meson.build"), "w") as f:
            f.write("project('wraps')\n")
        done = subprocess.run(["meson", "subprojects", "download", "--sourcedir", tmp],
                              capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode == 0:
        print(f"ok: {len(wraps)} wraps downloaded and verified")
        return 0
    for name, wrap in wraps.items():
        network = f"Download {name}...\n  -> could not get {wrap['source_url']} is the internet available?"
        if network not in output:
            fail(f"{name}.wrap failed for another reason than the network:\n{output[-6000:]}")
    print(f"ok: meson read {len(wraps)} wraps; each failed only to reach the network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
