#!/usr/bin/env python3
"""The simulator speaks the Hub's protocol: @huggingface/hub's snapshotDownload fetches demo repos from
it and the bytes in its cache equal the fixtures.

Usage: js_snapshot_test.py HUBSIM_EXE INTEROP_DIR
Fails when node or tests/interop/node_modules is missing: scripts/test installs them.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import repo_files  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402

REPOS = ["sentence-transformers/all-MiniLM-L6-v2", "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "gpt2"]


def main():
    exe, interop = sys.argv[1], sys.argv[2]
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(interop, "node_modules", "@huggingface", "hub")):
        print("error: needs node and tests/interop/node_modules: run scripts/test, or npm ci in tests/interop")
        return 1
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js_snapshot.cjs")
    with tempfile.TemporaryDirectory(prefix="hubsim-js-") as tmp:
        fixtures = os.path.join(tmp, "fixtures")
        generate(exe, "demo", fixtures)
        with Simulator(exe, fixtures, workdir=tmp) as sim:
            # Node reads NODE_EXTRA_CA_CERTS only at start, and this machine presets it: override it.
            env = dict(os.environ, NODE_EXTRA_CA_CERTS=sim.ca)
            cache = os.path.join(tmp, "cache")
            for repo in REPOS:
                done = subprocess.run([node, script, interop, sim.hub, repo, "main", cache], env=env,
                                      capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    raise AssertionError(f"snapshotDownload of {repo} failed:\n{done.stderr}")
                snapshot = done.stdout.strip().splitlines()[-1]
                sha = sim.get(f"/api/models/{repo}/revision/main").json()["sha"]
                if os.path.basename(snapshot) != sha:
                    raise AssertionError(f"{repo}: snapshot {snapshot} is not named after commit {sha}")
                expected = repo_files(os.path.join(fixtures, repo))
                got = repo_files(snapshot)
                if sorted(got) != sorted(expected):
                    raise AssertionError(f"{repo}: files {sorted(got)} != fixtures {sorted(expected)}")
                for path, data in expected.items():
                    if got[path] != data:
                        raise AssertionError(f"{repo}/{path}: downloaded bytes differ from the fixture")
                folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
                with open(os.path.join(folder, "refs", "main")) as f:
                    if f.read() != sha:
                        raise AssertionError(f"{repo}: refs/main does not hold {sha}")
            cdn = [line for line in sim.log() if line["listener"] == "cdn" and line["status"] in (200, 206)]
            if not cdn:
                raise AssertionError("the JS client fetched no LFS file from the CDN listener")
            if any(line["auth"] for line in sim.log()):
                raise AssertionError("the JS client sent a token it was never given")
    print(f"ok: snapshotDownload of {', '.join(REPOS)} matches the fixtures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
