#!/usr/bin/env python3
"""What `meson install` lays down matches what the documentation tells a user to use.

Runs `meson install --destdir` of the build into a temp folder, then checks that every installed
path README.md and the man pages name (`/usr/local/...` or `PREFIX/...`), and every path of the
rows of the "What `meson install` puts where" table of docs/operations.md (written for `--prefix=/usr`), exists
there; that the installed programs run; and that the units start the installed hfwarmd.

usage: install_test.py --build DIR --prefix PREFIX --source ROOT
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

# An absolute path of hfwarm's (it names hfwarm), written as the docs write them.
PATH = r"/[A-Za-z0-9.@+/-]*hfwarm[A-Za-z0-9.@+/-]*"


def rooted_paths(text, roots):
    """Paths in `text` that start with one of `roots`, as (as written, path below the root)."""
    found = []
    for root in roots:
        for match in re.finditer(re.escape(root) + f"({PATH})", text):
            found.append((root + match.group(1), match.group(1).rstrip(".")))
    return found


def section(text, heading):
    """The lines of the markdown section `heading`, up to the next heading of any level."""
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def documented_paths(source):
    """(document, path as written, path below the prefix) of every installed path the docs name."""
    named = []
    docs = [os.path.join(source, "README.md")]
    docs += sorted(os.path.join(source, "man", n) for n in os.listdir(os.path.join(source, "man"))
                   if n.endswith(".scd"))
    for doc in docs:
        with open(doc) as f:
            text = f.read()
        for written, rel in rooted_paths(text, ["/usr/local", "PREFIX"]):
            named.append((os.path.relpath(doc, source), written, rel))
    operations = os.path.join(source, "docs", "operations.md")
    with open(operations) as f:
        rows = section(f.read(), "## What `meson install` puts where").splitlines()
    table = "\n".join(row for row in rows if row.startswith("|"))
    for written, rel in rooted_paths(table, ["/usr"]):
        named.append(("docs/operations.md", written, rel))
    return named


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()

    named = documented_paths(args.source)
    written = {w for _, w, _ in named}
    # The README's first command of "Use" copies the example manifest: it must be among them.
    if "/usr/local/share/hfwarm/manifest.example.txt" not in written:
        sys.exit("README.md no longer names /usr/local/share/hfwarm/manifest.example.txt; "
                 f"paths found: {sorted(written)}")

    with tempfile.TemporaryDirectory(prefix="install-test-") as destdir:
        done = subprocess.run(["meson", "install", "-C", args.build, "--no-rebuild", "--quiet",
                               "--destdir", destdir], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            sys.exit(f"meson install --destdir failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        installed = destdir + args.prefix

        missing = [f"{doc}: {path} (looked for {installed + rel})" for doc, path, rel in named
                   if not os.path.exists(installed + rel)]
        if missing:
            sys.exit("documented paths that meson install does not lay down:\n  " + "\n  ".join(missing))

        for program in ("hfwarmd", "hfwarmctl"):
            done = subprocess.run([os.path.join(installed, "bin", program), "--version"],
                                  capture_output=True, text=True, timeout=30)
            if done.returncode != 0 or not done.stdout.startswith(program + " "):
                sys.exit(f"installed {program} --version: exit {done.returncode}, output {done.stdout!r}")

        for unit in ("lib/systemd/user/hfwarmd.service", "lib/systemd/system/hfwarmd@.service"):
            with open(os.path.join(installed, unit)) as f:
                exec_start = [line for line in f if line.startswith("ExecStart=")]
            wanted = f"ExecStart={args.prefix}/bin/hfwarmd"
            if len(exec_start) != 1 or not exec_start[0].startswith(wanted):
                sys.exit(f"{unit}: expected one line starting with {wanted!r}, got {exec_start!r}")

    print(f"ok: {len(named)} documented paths installed under {args.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
