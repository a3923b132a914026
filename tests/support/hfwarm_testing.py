"""What every Python test of hfwarm shares: assertions, the Hub's hashes, fixture trees, the
simulator's settled log, a clean environment for hfwarmd, and the one-case-per-process dispatch.

A test script puts this folder on sys.path (computed from its own __file__) and imports from here.
"""

import hashlib
import json
import os
import sys
import tempfile

LFS_THRESHOLD = 64 * 1024  # the simulator's default --lfs-threshold


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def equal(actual, expected, what):
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def etag_of(data):
    """The blob name the Hub gives a file: sha256 for LFS files, the git blob sha1 for the rest."""
    return sha256(data) if len(data) > LFS_THRESHOLD else git_blob_sha1(data)


def hash_matches_name(path):
    """A blob file hashes to its name: sha256 for a 64-hex name, the git blob sha1 for a 40-hex one."""
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if len(name) == 64:
        return sha256(data) == name
    return len(name) == 40 and git_blob_sha1(data) == name


def repo_files(root):
    """Relative path -> bytes of a fixture repo's main tree (without the simulator's settings file and
    extra trees)."""
    files = {}
    for base, dirs, names in os.walk(root):
        rel_base = os.path.relpath(base, root)
        if rel_base == ".":
            dirs[:] = [d for d in dirs if d != ".hubsim"]
        for name in names:
            rel = os.path.normpath(os.path.join(rel_base, name)).replace(os.sep, "/")
            if rel != ".hubsim.json":
                with open(os.path.join(base, name), "rb") as f:
                    files[rel] = f.read()
    return files


def write_text(path, text):
    """Writes `text` to `path`, creating its folder; returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def write_json(path, value):
    """Writes `value` as JSON (a hfwarmd config file, say) to `path`; returns the path."""
    return write_text(path, json.dumps(value))


def clean_env(tmp, **extra):
    """The environment minus everything of the machine that changes hfwarm's behaviour (tokens, config,
    caches, systemd's socket and notify variables); HOME and the XDG folders live under `tmp`/home."""
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_", "XDG_", "HFWARM_", "LISTEN_"))
            and k not in ("HOME", "NOTIFY_SOCKET", "CI_OFFLINE_MODE")}
    env = dict(keep, HOME=home, HF_HOME=os.path.join(home, "hf"), XDG_CONFIG_HOME=os.path.join(home, "config"),
               XDG_CACHE_HOME=os.path.join(home, "cache"), XDG_RUNTIME_DIR=os.path.join(home, "run"))
    env.update(extra)
    return env


def run_case(make_case, case, prefix):
    """Runs the method `test_<case>` of `make_case(tmp)` in a fresh temp folder; prints `ok <case>`.
    Returns the exit code: 0, or 2 for a case the class does not have."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        test = getattr(make_case(tmp), "test_" + case, None)
        if test is None:
            print(f"unknown case {case}", file=sys.stderr)
            return 2
        test()
    print(f"ok {case}")
    return 0
