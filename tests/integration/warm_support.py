"""Runs `hfwarmd --once` against hfwarm-hubsim and checks the Hugging Face cache it leaves.

Imported by engine_test.py; the simulator itself is started with tests/hubsim/hubsim_support.py.
The importing script puts tests/support on sys.path for hfwarm_testing.
"""

import fnmatch
import os
import re
import subprocess

from hfwarm_testing import (check, clean_env, equal, etag_of, hash_matches_name, repo_files, write_json,
                            write_text)

CACHEDIR_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
HEX40 = re.compile(r"[0-9a-f]{40}")


def repo_folder(repo):
    """`gpt2` -> `models--gpt2`, `datasets/org/name` -> `datasets--org--name`."""
    kind = "models"
    for prefix in ("models", "datasets", "spaces"):
        if repo.startswith(prefix + "/"):
            kind, repo = prefix, repo[len(prefix) + 1:]
    return kind + "--" + repo.replace("/", "--")


def api_path(repo):
    """The listing path of a repo: `gpt2` -> `/api/models/gpt2`."""
    if repo.startswith("datasets/"):
        return "/api/datasets/" + repo[len("datasets/"):]
    return "/api/models/" + repo


def fixture_files(fixtures, repo):
    """Relative path -> bytes of a fixture repo's main tree (without the simulator's settings)."""
    return repo_files(os.path.join(fixtures, repo))


def matches(path, pattern):
    """huggingface_hub's allow/ignore patterns: fnmatch where `*` crosses `/`; `dir/` means `dir/*`."""
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatchcase(path, pattern)


def select(paths, files=(), includes=(), excludes=()):
    """DESIGN.md section 2: `file:` files plus `include:` matches; else `include:` matches; else all;
    then `exclude:` removes."""
    if files:
        chosen = {p for p in paths if p in files or any(matches(p, g) for g in includes)}
    elif includes:
        chosen = {p for p in paths if any(matches(p, g) for g in includes)}
    else:
        chosen = set(paths)
    return {p for p in chosen if not any(matches(p, g) for g in excludes)}


def snapshot_files(snapshot):
    """Relative paths of every entry (symlink or file) under a snapshot folder."""
    found = set()
    for base, _, names in os.walk(snapshot):
        for name in names:
            found.add(os.path.relpath(os.path.join(base, name), snapshot).replace(os.sep, "/"))
    return found


def check_repo(cache, repo, commit, expected, revision="main", only_revision=True):
    """The cache holds exactly `expected` (path -> bytes) for `repo` at `commit`, laid out as
    huggingface_hub lays it out; with `only_revision`, blobs/ holds nothing else."""
    check(HEX40.fullmatch(commit), f"{repo}: {commit!r} is not a 40-hex commit")
    folder = os.path.join(cache, repo_folder(repo))
    check(os.path.isdir(folder), f"{repo}: no folder {folder}")
    ref = os.path.join(folder, "refs", revision)
    check(os.path.isfile(ref), f"{repo}: no refs/{revision}")
    with open(ref, "rb") as f:
        equal(f.read(), commit.encode(), f"{repo}: content of refs/{revision} (the bare commit, no newline)")

    snapshot = os.path.join(folder, "snapshots", commit)
    equal(sorted(snapshot_files(snapshot)), sorted(expected), f"{repo}: files in snapshots/{commit}")
    for path, data in expected.items():
        pointer = os.path.join(snapshot, path)
        check(os.path.islink(pointer), f"{repo}: snapshots/{commit}/{path} is not a symlink")
        etag = etag_of(data)
        target = "../" * (path.count("/") + 2) + "blobs/" + etag
        equal(os.readlink(pointer), target, f"{repo}: symlink target of {path}")
        blob = os.path.join(folder, "blobs", etag)
        check(os.path.isfile(blob) and not os.path.islink(blob), f"{repo}: blob {etag} of {path} is missing")
        check(hash_matches_name(blob), f"{repo}: blobs/{etag} does not hash to its name")
        with open(blob, "rb") as f:
            check(f.read() == data, f"{repo}: blobs/{etag} differs from the fixture bytes of {path}")

    if not only_revision:
        return
    blobs = sorted(os.listdir(os.path.join(folder, "blobs")))
    equal(blobs, sorted({etag_of(d) for d in expected.values()}), f"{repo}: names in blobs/")


def cache_escapes(cache):
    """Every path under the cache whose real location (symlinks followed) is outside it."""
    root = os.path.realpath(cache)
    outside = []
    for base, dirs, names in os.walk(cache):
        for name in dirs + names:
            path = os.path.join(base, name)
            if not os.path.realpath(path).startswith(root + os.sep):
                outside.append(path)
    return outside


class Warm:
    """`hfwarmd --once` with a clean environment: no token, config or cache of the machine leaks in."""

    def __init__(self, hfwarmd, tmp):
        self.hfwarmd = hfwarmd
        self.tmp = tmp
        # The working folder stays empty: a test can see a relative path that escaped the cache.
        self.cwd = os.path.join(tmp, "cwd")
        os.makedirs(self.cwd, exist_ok=True)
        self.env = clean_env(tmp)

    def manifest(self, text, name="manifest.txt"):
        return write_text(os.path.join(self.tmp, name), text)

    def config(self, settings, name="hfwarmd.json"):
        """Writes a hfwarmd config file (--config) from a dict; returns its path."""
        return write_json(os.path.join(self.tmp, name), settings)

    def command(self, sim, manifest, cache, *extra):
        args = [self.hfwarmd, "--once", "--manifest", manifest, "--cache-dir", cache]
        if sim is not None:
            args += ["--endpoint", sim.hub, "--ca-file", sim.ca]
        return args + list(extra)

    def run(self, sim, manifest, cache, *extra, env=None, timeout=60, niceness=0):
        """Runs to the end; returns the CompletedProcess (text stdout and stderr). `niceness` lowers
        hfwarmd's CPU priority below the simulator's (os.nice)."""
        return subprocess.run(self.command(sim, manifest, cache, *extra), capture_output=True, text=True,
                              errors="replace", timeout=timeout, env=dict(self.env, **(env or {})), cwd=self.cwd,
                              preexec_fn=(lambda: os.nice(niceness)) if niceness else None)

    def start(self, sim, manifest, cache, *extra):
        """Starts in the background; returns the Popen, whose `output` names the file of its output."""
        output = os.path.join(self.tmp, "hfwarmd.out")
        with open(output, "w") as out:
            process = subprocess.Popen(self.command(sim, manifest, cache, *extra), stdout=out,
                                       stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        process.output = output
        return process


def describe(result):
    """The exit code and output of a run, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-4000:]}"


def summary_row(result, repo):
    """The line of the summary table about `repo`, or None."""
    for line in result.stdout.splitlines():
        if line.split("  ")[0].strip() in (repo, repo + " (optional)"):
            return line
    return None
