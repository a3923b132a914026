#!/usr/bin/env python3
"""`eval "$(hfwarmctl env)"` gives a test step what it needs: after it, huggingface_hub's offline
lookups (offline_lookup.py), resolving the cache root from the environment as huggingface_hub does,
find every file hfwarmd warmed from hfwarm-hubsim, with no network.

The cache root has spaces, quotes and a backquote in it, so the quoting must survive a real shell's `eval`.

usage: env_test.py HFWARMD HFWARMCTL HUBSIM_EXE SOURCE_ROOT CASE   (one process per case)
"""

import os
import subprocess
import sys
import tempfile
import urllib.parse

SOURCE_ROOT = os.path.abspath(sys.argv[4])
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
for folder in ("hubsim", "integration", "support", "interop"):
    sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", folder))
import offline_lookup as lookup  # noqa: E402
from daemon_support import Daemon  # noqa: E402
from actions_runner import parse_file_command  # noqa: E402
from hfwarm_testing import check, clean_env, equal, run_case, write_json, write_text  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import Warm, api_path, describe  # noqa: E402

FULL_REPO = "sentence-transformers/all-MiniLM-L6-v2"
GGUF_REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
GGUF_FILE = "tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf"
MANIFEST = f"{FULL_REPO}\n{GGUF_REPO} gguf:{GGUF_FILE}\n"
# A cache root no shell word survives unquoted: spaces, both quotes, a backquote, a backslash. (No
# `$NAME`: huggingface_hub expands variables in HF_HUB_CACHE, so no client could read such a root.)
AWKWARD = "hf cache/it's \"quoted\" `x` \\n"
OFFLINE_SWITCHES = {"HF_HUB_OFFLINE": "1", "HF_OFFLINE": "true", "CI_OFFLINE_MODE": "true"}


def env_after(command, env):
    """The environment a shell has after running `command` (as `sh -c`), as a dict."""
    done = subprocess.run(["sh", "-c", command + ' && env -0'], capture_output=True, env=env, timeout=60)
    check(done.returncode == 0, f"sh -c {command!r}: exit {done.returncode}\n{done.stderr.decode(errors='replace')}")
    pairs = [item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item]
    return {k: v for k, v in pairs}


class Case:
    def __init__(self, hfwarmd, hfwarmctl, hubsim, tmp):
        self.tmp = tmp
        self.hfwarmd = hfwarmd
        self.hfwarmctl = hfwarmctl
        self.hubsim = hubsim
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.cache = os.path.join(tmp, AWKWARD)
        self.daemons = []
        self.simulator = None

    def sim(self):
        return Simulator(self.hubsim, self.fixtures, workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    @staticmethod
    def expected(sim):
        """repo -> (commit, path -> size of every file the manifest selects)."""
        found = {}
        for repo, only in ((FULL_REPO, None), (GGUF_REPO, GGUF_FILE)):
            r = sim.get(f"{api_path(repo)}/revision/main")
            equal(r.status, 200, f"revision of {repo}")
            commit = r.json()["sha"]
            r = sim.get(f"{api_path(repo)}/tree/{urllib.parse.quote(commit)}?recursive=true")
            files = {e["path"]: e["size"] for e in r.json() if e["type"] == "file"}
            found[repo] = (commit, {p: s for p, s in files.items() if only in (None, p)})
        return found

    def check_offline_lookups(self, environ, expected):
        """With the environment a test step would have, every selected file is found offline."""
        for name, value in OFFLINE_SWITCHES.items():
            equal(environ.get(name), value, f"{name} after eval")
        cache = lookup.hub_cache_of(environ)
        equal(os.path.realpath(cache), os.path.realpath(self.cache), "the cache root huggingface_hub resolves")
        for repo, (commit, files) in expected.items():
            allow = None if repo == FULL_REPO else [GGUF_FILE]
            folder = lookup.snapshot_download_offline(cache, repo, "main", allow_patterns=allow)
            equal(os.path.basename(folder), commit, f"{repo}: snapshot_download offline folder")
            for path, size in files.items():
                equal(os.path.getsize(os.path.join(folder, path)), size, f"{repo}/{path} in the snapshot")
                found = lookup.hf_hub_download_offline(cache, repo, path)
                equal(os.path.getsize(found), size, f"hf_hub_download offline {repo}/{path}")

    def test_daemon(self):
        """From the running daemon: HFWARM_SOCKET alone tells hfwarmctl where to ask."""
        manifest = write_text(os.path.join(self.tmp, "manifest.txt"), MANIFEST)
        with self.sim() as sim:
            self.simulator = sim
            daemon = Daemon(self, manifest, cache=self.cache).start()
            try:
                daemon.wait_ready(60)
                expected = self.expected(sim)
                env = clean_env(self.tmp, HFWARM_SOCKET=daemon.socket)
                environ = env_after(f'eval "$("{self.hfwarmctl}" env)"', env)
            finally:
                daemon.stop()
        self.check_offline_lookups(environ, expected)

    def test_cache_dir(self):
        """After `hfwarmd --once`: --cache-dir, --config and --format github give the same root."""
        warm = Warm(self.hfwarmd, self.tmp)
        with self.sim() as sim:
            result = warm.run(sim, warm.manifest(MANIFEST), self.cache)
            equal(result.returncode, 0, "hfwarmd --once\n" + describe(result))
            expected = self.expected(sim)
        env = clean_env(self.tmp, CACHE=self.cache)
        environ = env_after(f'eval "$("{self.hfwarmctl}" env --cache-dir "$CACHE")"', env)
        self.check_offline_lookups(environ, expected)

        config = write_json(os.path.join(self.tmp, "hfwarmd.json"), {"cache_dir": AWKWARD})
        environ = env_after(f'eval "$("{self.hfwarmctl}" env --config "{config}")"', env)
        self.check_offline_lookups(environ, expected)

        done = subprocess.run([self.hfwarmctl, "env", "--format", "github", "--cache-dir", self.cache],
                              capture_output=True, text=True, env=env, timeout=30)
        equal(done.returncode, 0, "hfwarmctl env --format github exit code")
        self.check_offline_lookups(dict(env, **parse_file_command(done.stdout)), expected)
        # HOME is not the cache's parent's parent: hf-hub 0.x cannot see it, and the note says so.
        check(done.stderr.startswith("::notice::hf-hub 0.x"), f"note on stderr: {done.stderr!r}")


def main():
    hfwarmd, hfwarmctl, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
    return run_case(lambda tmp: Case(hfwarmd, hfwarmctl, hubsim, tmp), case, "env-test-")


if __name__ == "__main__":
    sys.exit(main())
