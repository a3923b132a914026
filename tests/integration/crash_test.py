#!/usr/bin/env python3
"""`kill -9` of `hfwarmd --once` at 20 random instants of a warm of several repos with large files,
restarted each time, while a reader polls the cache as a client would: no snapshot link may ever point
to a missing or partial blob, no ref may name a snapshot that is not complete; at the end every blob
verifies and the file bytes served stay within 1.2 x the cache size.

usage: crash_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR [SEED]
"""

import hashlib
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import Warm, api_path, describe, repo_folder, snapshot_files  # noqa: E402

KILLS = 20
# Each run lives this long before its kill: 20 runs of ~0.6 s cover most of a ~16 s warm.
LIFETIME = (0.25, 1.0)
REPOS = {  # repo -> manifest specs; large/weights is 3 files of 100 MiB, fetched as parallel ranges
    "large/weights": "",
    "gpt2": "",
    "microsoft/phi-2": "",
    "sentence-transformers/all-MiniLM-L6-v2": "",
    "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF": "gguf:tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf",
}
HEX40 = re.compile(r"[0-9a-f]{40}")


def hash_file(path, sha256):
    h = hashlib.sha256() if sha256 else hashlib.sha1()
    if not sha256:
        h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Reader(threading.Thread):
    """Polls the cache until stopped and records every state a client must never see."""

    def __init__(self, cache, expected):
        super().__init__(daemon=True)
        self.cache = cache
        self.expected = expected  # repo folder -> (commit, {path: (etag, size)})
        self.sizes = {etag: size for _, files in expected.values() for etag, size in files.values()}
        self.verified = {}  # (path, inode, size, mtime) -> hash matched
        self.violations = []
        self.polls = 0
        self.links_seen = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.poll()
            self.polls += 1
            time.sleep(0.02)

    def violation(self, text):
        if len(self.violations) < 50:
            self.violations.append(f"poll {self.polls}: {text}")

    def blob_ok(self, link, blob):
        """The blob a link resolves to is whole: its size and hash match its name."""
        try:
            st = os.stat(blob)
        except FileNotFoundError:
            self.violation(f"{link} points to a missing blob {blob}")
            return
        name = os.path.basename(blob)
        if name not in self.sizes:
            self.violation(f"{link} points to {blob}, which no listed file is named")
            return
        if st.st_size != self.sizes[name]:
            self.violation(f"{link} points to {blob} of {st.st_size} bytes, not {self.sizes[name]}")
            return
        key = (blob, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self.verified:
            self.verified[key] = hash_file(blob, len(name) == 64) == name
        if not self.verified[key]:
            self.violation(f"{link} points to {blob}, whose bytes do not hash to its name")

    def poll(self):
        for folder, (commit, files) in self.expected.items():
            root = os.path.join(self.cache, folder)
            snapshots = os.path.join(root, "snapshots")
            for base, _, names in os.walk(snapshots):
                for name in names:
                    link = os.path.join(base, name)
                    if not os.path.islink(link):
                        self.violation(f"{link} is not a symlink")
                        continue
                    self.links_seen += 1
                    self.blob_ok(link, os.path.realpath(link))
            refs = os.path.join(root, "refs")
            for base, _, names in os.walk(refs):
                for name in names:
                    path = os.path.join(base, name)
                    if name.startswith(".hfwarm-") and name.endswith(".tmp"):
                        continue  # a ref being written: it becomes visible under its name by a rename
                    try:
                        with open(path, "rb") as f:
                            content = f.read().decode(errors="replace")
                    except FileNotFoundError:
                        continue
                    if not HEX40.fullmatch(content):
                        self.violation(f"{path} holds {content!r}, not a bare commit")
                        continue
                    snapshot = os.path.join(snapshots, content)
                    missing = [p for p in files if not os.path.exists(os.path.join(snapshot, p))]
                    if not os.path.isdir(snapshot) or missing:
                        self.violation(f"{path} names {content}, whose snapshot lacks {missing[:3] or 'everything'}")


def main():
    hfwarmd, hubsim = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed} (rerun with it as the 4th argument)")
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crash-test-") as tmp:
        fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", fixtures)
        generate(hubsim, "large", fixtures, "--size", "300M", "--files", "3")
        warm = Warm(hfwarmd, tmp)
        manifest = warm.manifest("".join(f"{repo} {spec}\n" for repo, spec in REPOS.items()))
        # Fast limits and backoff: restarts should spend their short lives downloading.
        config = warm.config({"retry": {"base_delay": 0.1, "max_delay": 1},
                              "limits": {"api": {"rate": 100, "burst": 200}, "resolvers": {"rate": 100, "burst": 200}}})
        cache = os.path.join(tmp, "cache")
        # 16 connections to the CDN (8 ranges per large file, the per-host cap) at 1.25 MiB/s each:
        # about 16 s for the ~330 MiB, so the 20 short runs end before the warm does even when every
        # run keeps all it received.
        with Simulator(hubsim, fixtures, "--cdn-rate", "1280K", "--api-quota", "0", "--resolver-quota", "0",
                       workdir=tempfile.mkdtemp(prefix="sim-", dir=tmp)) as sim:
            expected = {}
            for repo, spec in REPOS.items():
                commit = sim.get(f"{api_path(repo)}/revision/main").json()["sha"]
                files = {}
                for e in sim.get(f"{api_path(repo)}/tree/{commit}?recursive=true").json():
                    if e["type"] == "file" and (not spec or e["path"] == spec.split(":", 1)[1]):
                        files[e["path"]] = (e["lfs"]["oid"] if "lfs" in e else e["oid"], e["size"])
                expected[repo_folder(repo)] = (commit, files)

            reader = Reader(cache, expected)
            reader.start()
            early = []
            lives = []
            for i in range(KILLS):
                process = warm.start(sim, manifest, cache, "--config", config)
                life = rng.uniform(*LIFETIME)
                time.sleep(life)
                if process.poll() is not None:
                    with open(process.output) as f:
                        early.append(f"run {i + 1} ended (exit {process.returncode}) before its kill at {life:.2f} s:\n"
                                     + f.read()[-2000:])
                    break
                process.send_signal(signal.SIGKILL)
                process.wait()
                lives.append(life)
            final = warm.run(sim, manifest, cache, "--config", config, timeout=60)
            reader.stop.set()
            reader.join()
            reader.poll()  # one more look at the finished cache
            log = sim.log()

        print(f"{len(lives)} kills after {', '.join(f'{t:.2f}' for t in lives)} s; "
              f"{reader.polls} polls saw {reader.links_seen} links")
        check(not early, "a warm ended before all 20 kills, so the kills did not all strike mid-warm "
                         "(slow the CDN down): " + "\n".join(early))
        equal(final.returncode, 0, "exit code of the run after 20 kills\n" + describe(final))
        equal(reader.violations, [], "states a reader saw while hfwarmd was killed and restarted")
        check(reader.polls >= 20 and reader.links_seen > 0, f"the reader polled {reader.polls} times and saw "
                                                            f"{reader.links_seen} links; it proves nothing")

        cache_bytes = 0
        for folder, (commit, files) in expected.items():
            root = os.path.join(cache, folder)
            with open(os.path.join(root, "refs", "main"), "rb") as f:
                equal(f.read(), commit.encode(), f"{folder}: refs/main")
            equal(os.listdir(os.path.join(root, "refs")), ["main"], f"{folder}: names in refs/")
            equal(os.listdir(os.path.join(root, "snapshots")), [commit], f"{folder}: names in snapshots/")
            # Nothing a kill left half-made (a temp link, a temp ref) may stay where clients list files.
            equal(sorted(snapshot_files(os.path.join(root, "snapshots", commit))), sorted(files),
                  f"{folder}: entries of snapshots/{commit}")
            for path, (etag, _) in files.items():
                link = os.path.join(root, "snapshots", commit, path)
                equal(os.readlink(link), "../" * (path.count("/") + 2) + "blobs/" + etag, f"{folder}: link of {path}")
            blobs = os.path.join(root, "blobs")
            names = sorted(os.listdir(blobs))
            equal(names, sorted({etag for etag, _ in files.values()}), f"{folder}: names in blobs/ (no .incomplete)")
            for name in names:
                blob = os.path.join(blobs, name)
                equal(hash_file(blob, len(name) == 64), name, f"{folder}: hash of blobs/{name}")
                cache_bytes += os.path.getsize(blob)
        served = sum(line["bytes"] for line in log
                     if line["listener"] == "cdn" or (line["class"] == "resolvers" and line["method"] == "GET"
                                                     and line["status"] in (200, 206)))
        print(f"served {served} file bytes for a cache of {cache_bytes} bytes ({served / cache_bytes:.2f} x); "
              f"{time.monotonic() - started:.1f} s")
        per_blob = {}
        for line in log:
            if line["listener"] == "cdn":
                name = line["target"].split("?")[0].rsplit("/", 1)[-1]
                per_blob[name] = per_blob.get(name, 0) + line["bytes"]
        excess = sorted(((served_bytes - reader.sizes.get(name, 0), name) for name, served_bytes in per_blob.items()),
                        reverse=True)[:4]
        check(served <= 1.2 * cache_bytes,
              f"the simulator served {served} bytes of files ({served / cache_bytes:.2f} x the {cache_bytes}-byte "
              "cache) over 20 kills: restarts fetched again bytes already received; bytes served beyond the size, "
              f"per blob: {', '.join(f'{name[:12]} +{extra}' for extra, name in excess)}")
    print("ok crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
