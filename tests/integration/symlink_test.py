#!/usr/bin/env python3
"""`hfwarmd --once` on a cache where a symlink was planted at a path hfwarm writes: nothing outside
the cache changes or appears, and the run either finishes with the right bytes or names the symlink.

The paths come from the cache itself: a warm interrupted with kill -9 (partial file, lock, progress
state) and a finished warm (refs, snapshot, tree listing, tag). A symlink is planted at each of
them, at each of them plus `.tmp`, and at the repo folder, `.locks` and `.locks/<repo folder>`.

usage: symlink_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR CASE
"""

import os
import random
import shutil
import signal
import sys
import tempfile
import time

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, etag_of, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import Warm, api_path, check_repo, describe  # noqa: E402

MIB = 1 << 20
REPO = "test/big"
FOLDER = "models--test--big"


def listing(cache):
    """Every path under `cache`, relative, folders marked by a trailing '/'."""
    found = set()
    for base, dirs, names in os.walk(cache):
        for name in dirs:
            found.add(os.path.relpath(os.path.join(base, name), cache) + "/")
        for name in names:
            found.add(os.path.relpath(os.path.join(base, name), cache))
    return found


def fingerprint(folder):
    """Path -> (kind, bytes or link target, mtime) of everything under `folder`, symlinks not followed."""
    prints = {}
    for base, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if os.path.islink(path):
                prints[path] = ("link", os.readlink(path), st.st_mtime_ns)
            elif os.path.isdir(path):
                prints[path] = ("dir", None, st.st_mtime_ns)
            else:
                with open(path, "rb") as f:
                    prints[path] = ("file", f.read(), st.st_mtime_ns)
    return prints


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.warm = Warm(hfwarmd, tmp)
        rng = random.Random(8)
        self.files = {"config.json": b'{"model_type": "big"}\n', "weights.bin": rng.randbytes(8 * MIB)}
        for path, data in self.files.items():
            full = os.path.join(self.fixtures, REPO, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
        # Small enough that the weights go on parallel connections and leave a progress file.
        self.config = self.warm.config({"segment_min_size": "1M"})
        self.manifest = self.warm.manifest(REPO + "\n")

    def sim(self, *args):
        return Simulator(self.hubsim, self.fixtures, *args, workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    def interrupted(self, cache):
        """Warms into `cache` and kills hfwarmd once a partial file and its progress file exist."""
        locks = os.path.join(cache, ".locks", FOLDER)
        blobs = os.path.join(cache, FOLDER, "blobs")
        with self.sim("--cdn-rate", "1M") as sim:
            process = self.warm.start(sim, self.manifest, cache, "--config", self.config)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                partial = os.path.isdir(blobs) and any(n.endswith(".incomplete") for n in os.listdir(blobs))
                state = os.path.isdir(locks) and any(n.endswith(".segments") for n in os.listdir(locks))
                if partial and state:
                    break
                time.sleep(0.05)
            check(process.poll() is None, "hfwarmd ended before it could be interrupted")
            process.send_signal(signal.SIGKILL)
            process.wait()

    def plant(self, cache, rel, outside, index):
        """Replaces `rel` under `cache` by a symlink to a new file or folder in `outside`."""
        path = os.path.join(cache, rel.rstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        target = os.path.join(outside, f"target-{index}")
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.copytree(path, target, symlinks=True)
            shutil.rmtree(path)
        else:
            if os.path.lexists(path):
                with open(path, "rb") as f:
                    data = f.read()
                os.unlink(path)
            else:
                data = b"a file outside the cache\n"
            with open(target, "wb") as f:
                f.write(data)
        os.symlink(target, path)

    def test_planted_symlinks(self):
        base = os.path.join(self.tmp, "interrupted")
        self.interrupted(base)
        left = listing(base)
        finished = os.path.join(self.tmp, "finished")
        with self.sim() as sim:
            result = self.warm.run(sim, self.manifest, finished, "--config", self.config)
            equal(result.returncode, 0, "exit code of a plain warm\n" + describe(result))
            commit = sim.get(f"{api_path(REPO)}/revision/main").json()["sha"]
        left |= listing(finished)
        for must in (FOLDER + "/blobs/" + etag_of(self.files["weights.bin"]) + ".incomplete",
                     ".locks/" + FOLDER + "/" + etag_of(self.files["weights.bin"]) + ".segments"):
            check(must in left, f"the interrupted warm left no {must}: {sorted(left)}")
        targets = sorted(left | {p.rstrip("/") + ".tmp" for p in left} | {FOLDER + "/", ".locks/", f".locks/{FOLDER}/"})

        refused = []
        with self.sim() as sim:
            for index, rel in enumerate(targets):
                work = os.path.join(self.tmp, f"plant-{index}")
                cache = os.path.join(work, "cache")
                outside = os.path.join(work, "outside")
                os.makedirs(outside)
                shutil.copytree(base, cache, symlinks=True)
                self.plant(cache, rel, outside, index)
                before = fingerprint(outside)
                result = self.warm.run(sim, self.manifest, cache, "--config", self.config)
                equal(fingerprint(outside), before, f"files outside the cache after planting a symlink at {rel}")
                if result.returncode == 0:
                    # A symlink at a name hfwarm does not use stays as planted: not followed, not ours.
                    planted = os.path.join(cache, rel.rstrip("/"))
                    if os.path.islink(planted) and os.readlink(planted).startswith(outside):
                        os.unlink(planted)
                    check_repo(cache, REPO, commit, self.files)
                else:
                    equal(result.returncode, 1, f"exit code with a symlink at {rel}\n" + describe(result))
                    check("is a symlink" in result.stdout + result.stderr,
                          f"the failure with a symlink at {rel} does not say so\n" + describe(result))
                    refused.append(rel)
                shutil.rmtree(work)
        print(f"{len(targets)} symlinks planted, one a run; refused with a message: {refused}; the other runs "
              "finished with the right bytes")
        for rel in (FOLDER + "/", ".locks/", f".locks/{FOLDER}/"):
            check(rel in refused, f"a symlink at {rel} was followed instead of refused")

    def test_planted_blob(self):
        """A blobs/<etag> symlink to a file of the right size and the wrong bytes is downloaded again."""
        cache = os.path.join(self.tmp, "cache")
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside)
        config = self.files["config.json"]
        wrong = b"x" * len(config)
        with open(os.path.join(outside, "planted"), "wb") as f:
            f.write(wrong)
        blobs = os.path.join(cache, FOLDER, "blobs")
        os.makedirs(blobs)
        os.symlink(os.path.join(outside, "planted"), os.path.join(blobs, etag_of(config)))
        with self.sim() as sim:
            result = self.warm.run(sim, self.manifest, cache, "--config", self.config)
            equal(result.returncode, 0, "exit code with a planted blob\n" + describe(result))
            commit = sim.get(f"{api_path(REPO)}/revision/main").json()["sha"]
        check(not os.path.islink(os.path.join(blobs, etag_of(config))), "the planted blob symlink is still there")
        check_repo(cache, REPO, commit, self.files)
        with open(os.path.join(outside, "planted"), "rb") as f:
            equal(f.read(), wrong, "the planted symlink's target")


def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "symlink-test-")


if __name__ == "__main__":
    sys.exit(main())
