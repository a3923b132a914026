#!/usr/bin/env python3
"""`hfwarmd --once` against every fault of hfwarm-hubsim at once, and on a full disk: every required
entry ends ready with verified blobs, or fails with a clear message and nothing corrupt in the cache.

usage: faults_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (meson runs one process per case)
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, hash_matches_name, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import (Warm, api_path, check_repo, describe, fixture_files, repo_folder, select,  # noqa: E402
                          summary_row)

GGUF_REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
GGUF_FILE = "tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf"
DEMO = {  # the required lines of config/manifest.example.txt: repo -> file: selection (None: all)
    "Babelscape/wikineural-multilingual-ner": None,
    "sentence-transformers/all-MiniLM-L6-v2": None,
    "jinaai/jina-embeddings-v2-base-en": None,
    "cross-encoder/ms-marco-MiniLM-L-12-v2": None,
    GGUF_REPO: [GGUF_FILE],
    "bert-base-uncased": None,
    "gpt2": None,
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": None,
    "microsoft/phi-2": None,
}


def manifest_text(repos):
    return "".join(f"{repo}{''.join(' file:' + p for p in files or [])}\n" for repo, files in repos.items())


def cache_problems(cache):
    """What a client must never find: a blob that does not hash to its name, a snapshot link to a
    missing blob, a ref naming a snapshot that does not exist."""
    problems = []
    if not os.path.isdir(cache):
        return problems
    for folder in os.listdir(cache):
        root = os.path.join(cache, folder)
        if not folder.startswith(("models--", "datasets--")):
            continue
        blobs = os.path.join(root, "blobs")
        for name in os.listdir(blobs) if os.path.isdir(blobs) else []:
            if not name.endswith(".incomplete") and not hash_matches_name(os.path.join(blobs, name)):
                problems.append(f"{folder}/blobs/{name} does not hash to its name")
        for base, _, names in os.walk(os.path.join(root, "snapshots")):
            for name in names:
                link = os.path.join(base, name)
                if not os.path.exists(link):
                    problems.append(f"{os.path.relpath(link, cache)} points to a missing blob")
        for base, _, names in os.walk(os.path.join(root, "refs")):
            for name in names:
                with open(os.path.join(base, name)) as f:
                    commit = f.read()
                if not os.path.isdir(os.path.join(root, "snapshots", commit)):
                    problems.append(f"{folder}/refs/{name} names {commit!r}, which has no snapshot")
    return problems


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.warm = Warm(hfwarmd, tmp)

    def sim(self, *args):
        return Simulator(self.hubsim, self.fixtures, *args, workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    def check_ready(self, sim, cache, repos):
        for repo, files in repos.items():
            all_files = fixture_files(self.fixtures, repo)
            chosen = select(all_files, files or [])
            commit = sim.get(f"{api_path(repo)}/revision/main").json()["sha"]
            check_repo(cache, repo, commit, {p: all_files[p] for p in chosen})

    def test_fault_matrix(self):
        """Resets, 503s, stalls past the stall timeout, corrupt bytes, ignored ranges, signed URLs that
        expire after 1 s on a slow CDN, and 429 storms: all at once, seeded."""
        config = self.warm.config({"retry": {"max_attempts": 12, "base_delay": 0.1, "max_delay": 1},
                                   "stall_timeout": 2})
        cache = os.path.join(self.tmp, "cache")
        flags = ["--seed", "7", "--reset-rate", "0.1", "--fail-rate", "0.1", "--stall", "4", "--stall-rate", "0.05",
                 "--corrupt-rate", "0.05", "--ignore-range", "--url-ttl", "1", "--cdn-rate", "1M",
                 "--api-quota", "12", "--resolver-quota", "30", "--window", "3"]
        with self.sim(*flags) as sim:
            # The quota is per client address, shared with this test: spending the API window just
            # before hfwarmd starts makes its first listings meet a storm of 429s, as a fleet behind
            # one IP would, instead of a budget it can pace itself within from the start.
            for _ in range(12):
                sim.get("/api/models/gpt2/revision/main")
            result = self.warm.run(sim, self.warm.manifest(manifest_text(DEMO)), cache, "--config", config, timeout=80)
            log = sim.log()
            equal(result.returncode, 0, "exit code under every fault at once\n" + describe(result))
        with self.sim() as clean:  # the faulty one would answer the test's own listings with faults
            self.check_ready(clean, cache, DEMO)
        equal(cache_problems(cache), [], "corrupt states in the cache")
        leftovers = [os.path.join(base, n) for base, _, names in os.walk(cache) for n in names
                     if n.endswith(".incomplete")]
        equal(leftovers, [], ".incomplete files after the run")
        struck = {}
        for line in log[12:]:
            for fault in filter(None, line.get("fault", "").split(",")):
                struck[fault] = struck.get(fault, 0) + 1
        struck["expired-url"] = sum(1 for line in log if line["listener"] == "cdn" and line["status"] == 403)
        print("faults that struck hfwarmd:", ", ".join(f"{k} {v}" for k, v in sorted(struck.items())))
        # An expired URL shows only when a retry reuses a link older than 1 s; an engine that resolves
        # again before each retry never meets one, which is as good: that fault is not required.
        for fault in ("rate-limit", "fail", "reset", "stall", "corrupt", "ignore-range"):
            check(struck.get(fault, 0) > 0, f"no {fault} fault struck, so the matrix proves less: {struck}")

    # ---- a full disk ----

    def run_limited(self, sim, manifest, cache, *extra, fsize=None):
        """hfwarmd --once, optionally under RLIMIT_FSIZE with SIGXFSZ ignored (write() then fails with
        EFBIG instead of the signal killing the process)."""
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        return subprocess.run(self.warm.command(sim, manifest, cache, *extra), capture_output=True, text=True,
                              errors="replace", timeout=60, env=self.warm.env, cwd=self.warm.cwd,
                              preexec_fn=limit if fsize else None)

    def test_disk_full(self):
        """A 20 MiB tmpfs for a ~25 MiB manifest (RLIMIT_FSIZE when mounting is refused): the free-space
        check names the folder and the bytes needed; writes that still run out of space fail their
        entry; nothing in the cache is corrupt; with room again the same run ends ready."""
        small = os.path.join(self.tmp, "small")
        os.makedirs(small)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", small],
                                 capture_output=True, text=True).returncode == 0
        try:
            self.disk_full(small, mounted)
        finally:
            if mounted:
                for _ in range(10):
                    if subprocess.run(["umount", small], capture_output=True).returncode == 0:
                        break
                    time.sleep(0.2)  # a process that held a file there may still be exiting
                else:
                    subprocess.run(["umount", "-l", small], check=True)

    def disk_full(self, small, mounted):
        cache = os.path.join(small, "cache")
        manifest = self.warm.manifest(manifest_text(DEMO))
        no_reserve = self.warm.config({"min_free_space": 0}, "no-reserve.json")
        with self.sim() as sim:
            if mounted:
                # The default reserve (min_free_space 1 GiB) does not fit: every repo is refused before
                # its first byte, with the folder and the bytes needed.
                result = self.warm.run(sim, manifest, cache)
                equal(result.returncode, 1, "exit code on a 20 MiB file system\n" + describe(result))
                output = result.stdout + result.stderr
                for repo in DEMO:
                    row = summary_row(result, repo)
                    check(row and "failed" in row, f"summary row of {repo} on a full disk: {row!r}\n" + describe(result))
                blobs = os.path.join(cache, repo_folder("gpt2"), "blobs")
                check(f"not enough free space for {blobs}" in output and "needed" in output,
                      f"no message naming {blobs} and the space needed\n" + describe(result))
                equal(cache_problems(cache), [], "corrupt states after the refused run")

                # No reserve: the first repos fit, the rest do not (refused, or out of space mid-write).
                result = self.warm.run(sim, manifest, cache, "--config", no_reserve)
            else:
                print("mount refused (not root?): RLIMIT_FSIZE of 2 MiB stands in for the full disk")
                result = self.run_limited(sim, manifest, cache, "--config", no_reserve, fsize=2 << 20)
            equal(result.returncode, 1, "exit code when the disk fills up\n" + describe(result))
            failed = [repo for repo in DEMO if " failed " in (summary_row(result, repo) or "")]
            check(failed, "no repo failed on a full disk; the test proves nothing\n" + describe(result))
            for repo in failed:
                row = summary_row(result, repo)
                check(small in row and ("space" in row or "too large" in row.lower()),
                      f"the failure of {repo} must name the path and the lack of space: {row!r}\n" + describe(result))
            equal(cache_problems(cache), [], "corrupt states after running out of space")
            print("out of space:\n" + "\n".join(summary_row(result, repo) for repo in failed))

            if mounted:
                subprocess.run(["mount", "-o", "remount,size=200m", small], check=True)
            result = self.warm.run(sim, manifest, cache, "--config", no_reserve)
            equal(result.returncode, 0, "exit code once there is room again\n" + describe(result))
            self.check_ready(sim, cache, DEMO)
        equal(cache_problems(cache), [], "corrupt states after the recovery")
        leftovers = [os.path.join(base, n) for base, _, names in os.walk(cache) for n in names
                     if n.endswith(".incomplete")]
        equal(leftovers, [], ".incomplete files after the recovery")
        if mounted:
            self.full_mid_write(small, os.path.join(small, "cache2"))

    def full_mid_write(self, small, cache):
        """The check passes, then another program fills the disk while gpt2's weights arrive on a slow
        CDN: the write fails; the message names the path; no blob is published from it; with the
        space back, a rerun ends ready."""
        manifest = self.warm.manifest("gpt2\n", "gpt2.txt")
        no_reserve = self.warm.config({"min_free_space": 0}, "no-reserve.json")
        blobs = os.path.join(cache, repo_folder("gpt2"), "blobs")
        filler = os.path.join(small, "filler")
        with self.sim("--cdn-rate", "512K") as sim:
            process = self.warm.start(sim, manifest, cache, "--config", no_reserve)
            try:
                deadline = time.monotonic() + 20
                while not (os.path.isdir(blobs) and any(n.endswith(".incomplete") for n in os.listdir(blobs))):
                    check(process.poll() is None and time.monotonic() < deadline,
                          "gpt2's weights never started downloading")
                    time.sleep(0.05)
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * (1 << 16))
                            f.flush()
                    except OSError:
                        pass
                process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            with open(process.output) as f:
                output = f.read()
            os.remove(filler)
            equal(process.returncode, 1, "exit code when the disk fills up mid-download\n" + output[-4000:])
            row = next((line for line in output.splitlines() if line.startswith("gpt2 ")), "")
            equal(cache_problems(cache), [], "corrupt states after the disk filled up mid-download")
            result = self.warm.run(sim, manifest, cache, "--config", no_reserve)
            equal(result.returncode, 0, "exit code once the filler is gone\n" + describe(result))
            self.check_ready(sim, cache, {"gpt2": None})
        check("space" in row and small in row,
              f"the failure must name the path it could not write and the lack of space: {row!r}")

    def test_file_size_limit(self):
        """RLIMIT_FSIZE of 2 MiB (SIGXFSZ ignored): larger files fail with EFBIG; the message names the
        file; nothing corrupt; without the limit the run ends ready."""
        cache = os.path.join(self.tmp, "cache")
        repos = {"gpt2": None, "microsoft/phi-2": None}
        manifest = self.warm.manifest(manifest_text(repos))
        with self.sim() as sim:
            result = self.run_limited(sim, manifest, cache, fsize=2 << 20)
            equal(result.returncode, 1, "exit code under a 2 MiB file size limit\n" + describe(result))
            row = summary_row(result, "gpt2")
            check(row and "failed" in row and cache in row,
                  f"the failure must name the path it could not write: {row!r}\n" + describe(result))
            equal(cache_problems(cache), [], "corrupt states under the file size limit")
            result = self.warm.run(sim, manifest, cache)
            equal(result.returncode, 0, "exit code without the limit\n" + describe(result))
            self.check_ready(sim, cache, repos)
        equal(cache_problems(cache), [], "corrupt states after the recovery")


def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "faults-test-")


if __name__ == "__main__":
    sys.exit(main())
