#!/usr/bin/env python3
"""`hfwarmd --once` against hfwarm-hubsim: the cache it leaves (bytes, hashes, symlinks, refs), the
files it selects, and how it survives resets, kills, interrupts, corrupt bytes, expired links, hostile
listings, tokens, 429s, a warm cache and offline mode. Request counts come from the simulator's log.

usage: engine_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (meson runs one process per case)
"""

import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, etag_of, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import (CACHEDIR_SIGNATURE, Warm, api_path, cache_escapes, check_repo, describe,  # noqa: E402
                          fixture_files, repo_folder, select, summary_row)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
GGUF_REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
GGUF_FILE = "tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf"
GATED = "hubsim/gated-model"
TOKEN = "hf_integrationSecretToken0123456789"
MIB = 1 << 20


def parse_range_start(header):
    """`bytes=N-` -> N; None when there is no Range header."""
    if not header:
        return None
    return int(header.split("=", 1)[1].split("-", 1)[0])


def piece_bounds(header, size):
    """`bytes=A-B` -> (A, B + 1); `bytes=A-` -> (A, size)."""
    first, last = header.split("=", 1)[1].split("-", 1)
    return int(first), int(last) + 1 if last else size


def cdn_lines(log):
    return [line for line in log if line["listener"] == "cdn"]


def request_starts(lines, rate):
    """Connection -> when its first request started, in seconds after the first of them: a line is
    logged after its last byte, and a capped request took its bytes / `rate`."""
    starts = {}
    for line in lines:
        end = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        start = end - line["bytes"] / rate
        starts[line["connection"]] = min(start, starts.get(line["connection"], start))
    first = min(starts.values())
    return {connection: start - first for connection, start in starts.items()}


def check_pieces_once(lines, size, what):
    """The 206 answers' ranges cover [0, size) back to back, each byte once."""
    pieces = sorted(piece_bounds(line["range"], size) for line in lines if line["status"] == 206)
    check(pieces and pieces[0][0] == 0 and pieces[-1][1] == size and all(a[1] == b[0] for a, b in zip(pieces, pieces[1:])),
          f"{what}: the pieces do not cover the file once: {pieces}")
    return pieces


def resolved_files(log):
    """Repo -> set of file paths requested from the resolver (`/{repo}/resolve/{rev}/{path}`)."""
    files = {}
    for line in log:
        if line["class"] == "resolvers":
            repo, rest = line["target"].split("?")[0].split("/resolve/", 1)
            files.setdefault(repo.lstrip("/"), set()).add(urllib.parse.unquote(rest.split("/", 1)[1]))
    return files


def blob_stats(cache):
    """Path -> (inode, size, mtime) of every blob: a rewritten blob shows."""
    stats = {}
    for base, _, names in os.walk(cache):
        if os.path.basename(base) == "blobs":
            for name in names:
                st = os.stat(os.path.join(base, name))
                stats[os.path.join(base, name)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return stats


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.warm = Warm(hfwarmd, tmp)

    def sim(self, *args):
        return Simulator(self.hubsim, self.fixtures, *args, workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    def cache(self, name="cache"):
        return os.path.join(self.tmp, name)

    def files(self, repo):
        return fixture_files(self.fixtures, repo)

    def add_repo(self, repo, files):
        """Adds a repo to the fixtures (before the simulator starts): path -> bytes."""
        for path, data in files.items():
            full = os.path.join(self.fixtures, repo, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
        return files

    def big_repo(self, size):
        """`test/big`: one LFS weight file of `size` random bytes and a small config."""
        rng = random.Random(size)
        return self.add_repo("test/big", {"config.json": b'{"model_type": "big"}\n',
                                          "weights.bin": rng.randbytes(size)})

    @staticmethod
    def wait_for_partial(process, blobs, minimum):
        """Waits (30 s at most) until hfwarmd has written `minimum` bytes and a blobs/*.incomplete file
        exists. Bytes come from /proc/PID/io (wchar), since a preallocated file's size says nothing."""
        deadline = time.monotonic() + 30
        written = 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                with open(process.output) as f:
                    raise AssertionError(f"hfwarmd ended (exit {process.returncode}) before it could be killed:\n"
                                         + f.read()[-4000:])
            with open(f"/proc/{process.pid}/io") as f:
                written = int(next(line for line in f if line.startswith("wchar:")).split()[1])
            names = os.listdir(blobs) if os.path.isdir(blobs) else []
            if written >= minimum and any(n.endswith(".incomplete") for n in names):
                break
            time.sleep(0.05)
        return written

    @staticmethod
    def commit(sim, repo, revision="main"):
        info = sim.get(f"{api_path(repo)}/revision/{revision}")
        equal(info.status, 200, f"listing status of {repo}")
        return info.json()["sha"]

    def check_repos(self, sim, cache, selections):
        """selections: repo -> set of selected paths (None: every file)."""
        for repo, paths in selections.items():
            files = self.files(repo)
            chosen = {p: files[p] for p in (files if paths is None else paths)}
            check_repo(cache, repo, self.commit(sim, repo), chosen)

    # ---- the cache ----

    def test_demo_manifest(self):
        manifest = os.path.join(os.path.dirname(__file__), "..", "..", "config", "manifest.example.txt")
        cache = self.cache()
        with self.sim() as sim:
            result = self.warm.run(sim, manifest, cache)
            equal(result.returncode, 0, "exit code with only an optional entry failing\n" + describe(result))
            log = sim.log()
            repos = ["Babelscape/wikineural-multilingual-ner", MINILM, "jinaai/jina-embeddings-v2-base-en",
                     "cross-encoder/ms-marco-MiniLM-L-12-v2", GGUF_REPO, "bert-base-uncased", "gpt2",
                     "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "microsoft/phi-2"]
            selections = {repo: None for repo in repos}
            selections[GGUF_REPO] = {GGUF_FILE}
            self.check_repos(sim, cache, selections)

            for repo in repos:
                commit = self.commit(sim, repo)
                tree_file = os.path.join(cache, repo_folder(repo), "trees", commit + ".json")
                check(os.path.isfile(tree_file), f"{repo}: no trees/{commit}.json")
                with open(tree_file) as f:
                    tree = json.load(f)
                expected = {}
                for e in sim.get(f"{api_path(repo)}/tree/{commit}?recursive=true").json():
                    if e["type"] != "file":
                        continue
                    entry = {"size": e["size"], "blob_id": e["oid"]}
                    if "lfs" in e:
                        entry.update(lfs_sha256=e["lfs"]["oid"], lfs_size=e["lfs"]["size"])
                    expected[e["path"]] = entry
                equal(tree, {"format_version": 1, "files": expected}, f"{repo}: trees/{commit}.json")

        with open(os.path.join(cache, "CACHEDIR.TAG")) as f:
            check(f.read().startswith(CACHEDIR_SIGNATURE + "\n"), "CACHEDIR.TAG lacks the signature line")
        check(os.path.isdir(os.path.join(cache, "models--gpt2")), "legacy gpt2 is not in models--gpt2")
        folders = {name for name in os.listdir(cache) if name.startswith("models--")}
        check({repo_folder(r) for r in repos} <= folders, f"repo folders: {sorted(folders)}")
        check(not os.path.exists(os.path.join(cache, "models--dslim--bert-base-NER", "snapshots")),
              "the missing repo got a snapshot")

        row = summary_row(result, "dslim/bert-base-NER")
        check(row and "failed" in row and "not found" in row,
              f"the summary row of the missing optional repo: {row!r}\n" + describe(result))
        equal(resolved_files(log).get(GGUF_REPO), {GGUF_FILE}, f"files of {GGUF_REPO} requested")

    def test_selection(self):
        parquet_repo = "datasets/hubsim/tiny-dataset"
        specs = {
            "microsoft/phi-2": dict(files=["config.json"], includes=["*.safetensors"], excludes=["model-00002*"]),
            MINILM: dict(includes=["1_Pooling/", "*.txt"]),
            "Babelscape/wikineural-multilingual-ner": dict(includes=["*.json"], excludes=["special_tokens_map.json"]),
            "cross-encoder/ms-marco-MiniLM-L-12-v2": dict(excludes=["*.safetensors", "vocab.txt"]),
            "gpt2": dict(files=["vocab.json", "merges.txt"]),
            GGUF_REPO: dict(gguf=[GGUF_FILE], includes=["*.md"]),
            parquet_repo: dict(includes=["data/"], excludes=["*.csv"]),
        }
        # The same repos with other specs, in a second cache (two entries of one repo would merge).
        second = {
            MINILM: dict(excludes=["1_Pooling/", "*.safetensors"]),
            parquet_repo: dict(files=["data/train.parquet"]),
            "jinaai/jina-embeddings-v2-base-en": dict(includes=["tokenizer*"], excludes=["*config*"]),
        }
        with self.sim() as sim:
            for name, table in (("first", specs), ("second", second)):
                lines = []
                selections = {}
                for repo, spec in table.items():
                    words = [repo] + [f"file:{p}" for p in spec.get("files", [])] + \
                        [f"gguf:{p}" for p in spec.get("gguf", [])] + \
                        [f"include:{g}" for g in spec.get("includes", [])] + \
                        [f"exclude:{g}" for g in spec.get("excludes", [])]
                    lines.append(" ".join(words))
                    paths = self.files(repo)
                    selections[repo] = select(paths, spec.get("files", []) + spec.get("gguf", []),
                                              spec.get("includes", []), spec.get("excludes", []))
                    check(selections[repo] and selections[repo] != set(paths), f"a weak selection case for {repo}")
                cache = self.cache(name)
                mark = len(sim.log())
                result = self.warm.run(sim, self.warm.manifest("\n".join(lines) + "\n", name + ".txt"), cache)
                equal(result.returncode, 0, f"exit code of the {name} selection run\n" + describe(result))
                equal(resolved_files(sim.log()[mark:]), selections, f"files requested in the {name} run")
                self.check_repos(sim, cache, selections)

    def test_missing_file(self):
        cache = self.cache()
        with self.sim() as sim:
            manifest = self.warm.manifest("gpt2 file:config.json file:sub/missing-weights.bin\n")
            result = self.warm.run(sim, manifest, cache)
            equal(result.returncode, 1, "exit code when a required file: is absent\n" + describe(result))
            commit = self.commit(sim, "gpt2")
            marker = os.path.join(cache, "models--gpt2", ".no_exist", commit, "sub", "missing-weights.bin")
            check(os.path.isfile(marker), f"no .no_exist marker at {marker}")
            equal(os.path.getsize(marker), 0, "size of the .no_exist marker")
            row = summary_row(result, "gpt2")
            check(row and "failed" in row and "sub/missing-weights.bin" in row,
                  f"the summary row must fail naming the missing file: {row!r}\n" + describe(result))

            optional = self.warm.manifest("gpt2 file:sub/missing-weights.bin optional\n", "optional.txt")
            result = self.warm.run(sim, optional, self.cache("optional"))
            equal(result.returncode, 0, "exit code when an optional file: is absent\n" + describe(result))
            row = summary_row(result, "gpt2")
            check(row and "ready" in row and f"{optional}:1 (optional)" in row and "sub/missing-weights.bin" in row,
                  f"the summary row of the optional entry notes the absent file and its line: {row!r}\n"
                  + describe(result))

    def test_merged_lines(self):
        """Two lines of one repo fetch the union of what each selects; an optional line's absent file
        does not fail the required line; a required line's absent file fails naming that line."""
        cache = self.cache()
        with self.sim() as sim:
            manifest = self.warm.manifest(
                "bert-base-uncased\n"
                "microsoft/phi-2\n"
                "bert-base-uncased file:config.json file:flax_model.msgpack optional\n"
                "microsoft/phi-2 include:*.json exclude:tokenizer.json\n")
            result = self.warm.run(sim, manifest, cache)
            equal(result.returncode, 0, "exit code when only an optional line names an absent file\n"
                  + describe(result))
            log = sim.log()
            self.check_repos(sim, cache, {"bert-base-uncased": None, "microsoft/phi-2": None})
            check(len(self.files("microsoft/phi-2")) == 8, "the fixture of microsoft/phi-2 has 8 files")
            commit = self.commit(sim, "bert-base-uncased")
            marker = os.path.join(cache, "models--bert-base-uncased", ".no_exist", commit, "flax_model.msgpack")
            check(os.path.isfile(marker), f"no .no_exist marker at {marker}")
            row = summary_row(result, "bert-base-uncased")
            check(row and "ready" in row and f"{manifest}:3 (optional): flax_model.msgpack does not exist" in row,
                  f"the summary row of bert-base-uncased: {row!r}\n" + describe(result))
            # Each file once: the two lines of a repo share one listing and one download per file.
            listings = [line for line in log if line["class"] == "api" and "/revision/" in line["target"]]
            equal(len(listings), 2, "listings for two repos of four lines")
            equal(sum(len(v) for v in resolved_files(log).values()),
                  len(self.files("bert-base-uncased")) + 8, "files requested")

            required = self.warm.manifest("gpt2 file:config.json\ngpt2 file:config.json file:nope.bin\n",
                                          "required.txt")
            result = self.warm.run(sim, required, self.cache("required"))
            equal(result.returncode, 1, "exit code when a required line names an absent file\n" + describe(result))
            row = summary_row(result, "gpt2")
            check(row and "failed" in row and f"{required}:2: nope.bin does not exist" in row,
                  f"the summary row names the failing line: {row!r}\n" + describe(result))

    def test_revisions(self):
        """Branches, tags, a `refs/pr/N` and a pinned commit: each gets its snapshot and its ref;
        a pinned commit also gets `refs/<sha>`, the only place hf-hub 0.x looks."""
        repo = "hubsim/refs-model"
        main_files = self.files(repo)
        dev_files = fixture_files(os.path.join(self.fixtures, repo, ".hubsim"), "dev")
        with self.sim() as sim:
            pinned = self.commit(sim, "gpt2")
            manifest = self.warm.manifest(f"{repo}@dev\n{repo}@v1.0\n{repo} revision:refs/pr/1\ngpt2@{pinned}\n")
            result = self.warm.run(sim, manifest, self.cache())
            equal(result.returncode, 0, "exit code with branches, tags and a pinned commit\n" + describe(result))
            for revision, files in (("dev", dev_files), ("v1.0", main_files), ("refs/pr/1", dev_files)):
                commit = self.commit(sim, repo, revision.replace("/", "%2F"))
                check_repo(self.cache(), repo, commit, files, revision=revision, only_revision=False)
            check_repo(self.cache(), "gpt2", pinned, self.files("gpt2"), revision=pinned)
        blobs = os.listdir(os.path.join(self.cache(), repo_folder(repo), "blobs"))
        equal(sorted(blobs), sorted({etag_of(d) for d in list(main_files.values()) + list(dev_files.values())}),
              f"{repo}: names in blobs/ for dev, v1.0 and refs/pr/1")

    # ---- interruptions and bad bytes ----

    def test_resume_after_reset(self):
        repos = {"microsoft/phi-2": None, "gpt2": None}
        lfs_total = sum(len(d) for r in repos for d in self.files(r).values() if len(d) > 64 * 1024)
        cache = self.cache()
        with self.sim("--reset-after", "768K") as sim:
            result = self.warm.run(sim, self.warm.manifest("microsoft/phi-2\ngpt2\n"), cache)
            equal(result.returncode, 0, "exit code with connections cut every 768 KiB\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, cache, repos)
        resets = [line for line in cdn_lines(log) if "reset" in line.get("fault", "")]
        check(len(resets) >= 4, f"only {len(resets)} CDN bodies were cut; the test proves nothing")
        resumed = [line for line in cdn_lines(log) if (parse_range_start(line["range"]) or 0) > 0]
        check(resumed and all(line["status"] == 206 for line in resumed), "resumes must be 206 ranges")
        fetched = sum(line["bytes"] for line in cdn_lines(log))
        check(fetched <= 1.1 * lfs_total, f"fetched {fetched} CDN bytes for {lfs_total} bytes of files")

    def test_resume_after_many_resets(self):
        """A 6 MiB file whose connection drops every 512 KiB (12 cuts): each attempt moves the download
        on, so the file arrives; a flaky link must not exhaust retry.max_attempts (short backoff here)."""
        data = self.big_repo(6 * MIB)["weights.bin"]
        config = self.warm.config({"retry": {"base_delay": 0.1, "max_delay": 1}})
        with self.sim("--reset-after", "512K") as sim:
            result = self.warm.run(sim, self.warm.manifest("test/big\n"), self.cache(), "--config", config)
            equal(result.returncode, 0, "exit code with the connection cut every 512 KiB\n" + describe(result))
            log = cdn_lines(sim.log())
            self.check_repos(sim, self.cache(), {"test/big": None})
        fetched = sum(line["bytes"] for line in log)
        check(fetched <= 1.1 * len(data), f"fetched {fetched} CDN bytes for a {len(data)}-byte file")

    def test_resume_after_kill(self):
        files = self.big_repo(6 * MIB)
        data = files["weights.bin"]
        blobs = os.path.join(self.cache(), "models--test--big", "blobs")
        manifest = self.warm.manifest("test/big\n")
        with self.sim("--cdn-rate", "1M") as sim:
            process = self.warm.start(sim, manifest, self.cache())
            partial = self.wait_for_partial(process, blobs, 512 * 1024)
            process.send_signal(signal.SIGKILL)
            process.wait()
        check(partial >= 512 * 1024, f"only {partial} bytes were written within 30 s")
        check(not os.path.exists(os.path.join(blobs, etag_of(data))), "a blob was published before the kill")

        with self.sim() as sim:
            result = self.warm.run(sim, manifest, self.cache())
            equal(result.returncode, 0, "exit code of the run after kill -9\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": None})
            log = cdn_lines(sim.log())
        check(log, "the second run made no CDN request")
        start = parse_range_start(log[0]["range"])
        check(start is not None and start > 0, f"the second run started from byte {start}, not from the partial file")
        fetched = sum(line["bytes"] for line in log)
        check(fetched <= len(data) - start, f"the second run fetched {fetched} bytes, resuming at {start}")
        check(not [n for n in os.listdir(blobs) if n.endswith(".incomplete")], "an .incomplete file is left")

    def test_resume_after_interrupt(self):
        """SIGINT or SIGTERM during `hfwarmd --once` stops the run as the daemon stops: within the grace
        period, with the summary and exit code 1 (README), the .incomplete partial kept, and the next run
        resumes from it instead of starting over."""
        data = self.big_repo(6 * MIB)["weights.bin"]
        manifest = self.warm.manifest("test/big\n")
        for sig in (signal.SIGINT, signal.SIGTERM):
            cache = self.cache(f"cache-{sig.name}")
            blobs = os.path.join(cache, "models--test--big", "blobs")
            with self.sim("--cdn-rate", "1M") as sim:
                process = self.warm.start(sim, manifest, cache)
                written = self.wait_for_partial(process, blobs, 512 * 1024)
                process.send_signal(sig)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise AssertionError(f"hfwarmd --once still ran 5 s after {sig.name}")
            with open(process.output, errors="replace") as f:
                output = f.read()
            check(written >= 512 * 1024, f"only {written} bytes were written within 30 s")
            equal(process.returncode, 1, f"exit code of --once after {sig.name}\n{output[-4000:]}")
            check("partial downloads are kept" in output, f"no stop message after {sig.name}\n{output[-4000:]}")
            row = next((line for line in output.splitlines() if line.startswith("test/big ")), None)
            check(row is not None and " ready " not in row, f"no summary row of an unfinished test/big\n{output}")
            check(os.path.exists(os.path.join(blobs, etag_of(data) + ".incomplete")),
                  f"the .incomplete partial is gone after {sig.name}: {os.listdir(blobs)}")
            check(not os.path.exists(os.path.join(blobs, etag_of(data))), f"a blob was published before {sig.name}")

            with self.sim() as sim:
                result = self.warm.run(sim, manifest, cache)
                equal(result.returncode, 0, f"exit code of the run after {sig.name}\n" + describe(result))
                self.check_repos(sim, cache, {"test/big": None})
                log = cdn_lines(sim.log())
            check(log, f"the run after {sig.name} made no CDN request")
            start = parse_range_start(log[0]["range"])
            check(start is not None and start > 0,
                  f"the run after {sig.name} started from byte {start}, not from the partial file")
            fetched = sum(line["bytes"] for line in log)
            check(fetched <= len(data) - start, f"the run after {sig.name} fetched {fetched} bytes, resuming at {start}")
            check(not [n for n in os.listdir(blobs) if n.endswith(".incomplete")], "an .incomplete file is left")

    def test_segmented_resume_after_kill(self):
        """A 64 MiB file is fetched as parallel ranges (the default segment_min_size); killed part-way,
        every segment resumes from the progress saved on disk."""
        data = self.big_repo(64 * MIB)["weights.bin"]
        blobs = os.path.join(self.cache(), "models--test--big", "blobs")
        manifest = self.warm.manifest("test/big\n")
        with self.sim("--cdn-rate", "2M") as sim:
            process = self.warm.start(sim, manifest, self.cache())
            written = self.wait_for_partial(process, blobs, 12 * MIB)
            process.send_signal(signal.SIGKILL)
            process.wait()
            first = cdn_lines(sim.log())
        check(written >= 12 * MIB, f"only {written} bytes were written within 30 s")

        with self.sim() as sim:
            result = self.warm.run(sim, manifest, self.cache())
            equal(result.returncode, 0, "exit code of the segmented run after kill -9\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": None})
            second = cdn_lines(sim.log())
        starts = sorted({parse_range_start(line["range"]) for line in first + second if line["range"]})
        check(len(starts) >= 2, f"the file was not fetched as parallel ranges: range starts {starts}")
        check(all(line["range"] and parse_range_start(line["range"]) > 0 for line in second),
              f"a segment started again from zero after the kill: {[line['range'] for line in second]}")
        fetched = sum(line["bytes"] for line in second)
        check(fetched <= len(data) - 4 * MIB, f"the second run fetched {fetched} of {len(data)} bytes")
        check(not [n for n in os.listdir(blobs) if n.endswith(".incomplete")], "an .incomplete file is left")

    def test_segmented_pieces(self):
        """A 40 MiB file on 2 connections is cut into pieces taken in order, large first and 4 MiB at
        the end; the file is resolved once per connection and later pieces go straight to the signed
        CDN URL. When that URL has expired (1 s lifetime) a piece gets a 403, the file is resolved
        again, and every piece still arrives whole."""
        size = 40 * MIB
        self.big_repo(size)
        config = self.warm.config({"segments": 2, "segment_min_size": 16 * MIB})
        manifest = self.warm.manifest("test/big file:weights.bin\n")
        for name, ttl in (("lasting", "3600"), ("expiring", "1")):
            cache = os.path.join(self.tmp, f"cache-{name}")
            with self.sim("--cdn-rate", "8M", "--url-ttl", ttl) as sim:
                result = self.warm.run(sim, manifest, cache, "--config", config)
                equal(result.returncode, 0, f"exit code of the {name} run\n" + describe(result))
                self.check_repos(sim, cache, {"test/big": {"weights.bin"}})
                log = [line for line in sim.log() if "weights.bin" in line["target"] or line["listener"] == "cdn"]
            trace = [(line["listener"], line["status"], line["range"]) for line in log]
            pieces = sorted({piece_bounds(r, size) for listener, status, r in trace if listener == "cdn" and status == 206})
            check(len(pieces) > 2, f"{name}: the file was not cut into more pieces than connections: {pieces}")
            check(all(a[1] == b[0] for a, b in zip(pieces, pieces[1:])) and pieces[0][0] == 0 and pieces[-1][1] == size,
                  f"{name}: the pieces do not cover the file once, in order: {pieces}")
            check(pieces[0][1] - pieces[0][0] > 4 * MIB and pieces[-1][1] - pieces[-1][0] <= 6 * MIB,
                  f"{name}: the pieces do not shrink towards the end: {pieces}")
            fetched = sum(line["bytes"] for line in log if line["listener"] == "cdn")
            check(fetched <= size + MIB, f"the {name} run fetched {fetched} CDN bytes for a {size}-byte file")
            resolves = [t for t in trace if t[0] == "hub"]
            if name == "lasting":
                equal(len(resolves), 2, f"resolver requests for {len(pieces)} pieces on 2 connections: {trace}")
                equal(len([t for t in trace if t[0] == "cdn"]), len(pieces), f"CDN requests, one per piece: {trace}")
            else:
                expired = [i for i, t in enumerate(trace) if t[0] == "cdn" and t[1] == 403]
                check(expired, f"no piece reused the expired URL: {trace}")
                check(any(t[0] == "hub" for t in trace[expired[0] + 1:]), f"no new resolve after the 403: {trace}")

    def test_connections_tuned(self):
        """A CDN that caps each connection at 4 MiB/s: a 48 MiB file starts on 2 connections and the
        engine adds more, since each brings its own 4 MiB/s (up to `segments`, 8)."""
        self.big_repo(48 * MIB)
        config = self.warm.config({"segment_min_size": 16 * MIB})
        with self.sim("--cdn-rate", "4M") as sim:
            result = self.warm.run(sim, self.warm.manifest("test/big file:weights.bin\n"), self.cache(), "--config",
                                   config)
            equal(result.returncode, 0, "exit code with a capped CDN\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": {"weights.bin"}})
            pieces = [line for line in cdn_lines(sim.log()) if line["status"] == 206]
        connections = {line["connection"] for line in pieces}
        check(4 <= len(connections) <= 8, f"{len(connections)} CDN connections carried the pieces; expected 4 to 8")

    def test_capped_ramp(self):
        """A CDN that caps each connection at 20 MiB/s: a 64 MiB file (default settings) is on at least
        4 connections within its first second, and its pieces cover it exactly once."""
        size = 64 * MIB
        self.big_repo(size)
        with self.sim("--cdn-rate", "20M") as sim:
            result = self.warm.run(sim, self.warm.manifest("test/big file:weights.bin\n"), self.cache())
            equal(result.returncode, 0, "exit code with a capped CDN\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": {"weights.bin"}})
            lines = cdn_lines(sim.log())
        check_pieces_once(lines, size, "capped 64 MiB file")
        starts = request_starts([line for line in lines if line["status"] == 206], 20 * MIB)
        early = sorted(t for t in starts.values() if t <= 1.0)
        check(len(early) >= 4, f"{len(early)} CDN connections started within 1 s (starts: {sorted(starts.values())})")
        check(len(starts) <= 8, f"{len(starts)} CDN connections for one file; `segments` allows 8")

    def test_uncapped_stays_at_two(self):
        """On an uncapped link (loopback) a 64 MiB file stays on the 2 connections it starts with: the
        first bytes show connections faster than a capped CDN's, or an event loop with no CPU to
        spare (a debug build, a loaded machine). The simulator must stay the faster side, as a CDN is:
        a simulator starved of CPU by other tests would look like a CDN that caps each connection,
        so hfwarmd runs at a lower CPU priority than it."""
        size = 64 * MIB
        self.big_repo(size)
        with self.sim() as sim:
            result = self.warm.run(sim, self.warm.manifest("test/big file:weights.bin\n"), self.cache(),
                                   niceness=10)
            equal(result.returncode, 0, "exit code on an uncapped link\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": {"weights.bin"}})
            lines = cdn_lines(sim.log())
        check_pieces_once(lines, size, "uncapped 64 MiB file")
        connections = sorted({line["connection"] for line in lines})
        equal(len(connections), 2, f"CDN connections on loopback (pieces: "
              f"{[(line['connection'], line['range']) for line in lines]})")

    def test_segment_thresholds(self):
        """`segment_min_size` (8M by default): a file 1 byte under it goes in one plain GET; a file
        of exactly that size in pieces on 2 connections, covering it once."""
        for size, parallel in ((8 * MIB - 1, False), (8 * MIB, True)):
            rng = random.Random(size)
            repo = f"test/size-{size}"
            self.add_repo(repo, {"weights.bin": rng.randbytes(size)})
            cache = self.cache(f"cache-{size}")
            with self.sim() as sim:
                result = self.warm.run(sim, self.warm.manifest(f"{repo} file:weights.bin\n"), cache)
                equal(result.returncode, 0, f"exit code for {size} bytes\n" + describe(result))
                self.check_repos(sim, cache, {repo: {"weights.bin"}})
                lines = cdn_lines(sim.log())
            if parallel:
                pieces = check_pieces_once(lines, size, f"{size}-byte file")
                equal(len(pieces), 2, f"pieces of a {size}-byte file: {pieces}")
            else:
                equal([(line["status"], line["range"]) for line in lines], [(200, None)],
                      f"CDN requests for a {size}-byte file")

    def test_large_file_ranges(self):
        """A CDN that refuses GETs of more than 64 MiB (as the Hub's Xet bridge refuses range-less GETs of
        very large files): a file larger than that arrives whole, in parallel pieces and on one
        stream (`segments` 1), every request a Range of at most 64 MiB, covering the file once."""
        size = 80 * MIB + 12345
        self.big_repo(size)
        manifest = self.warm.manifest("test/big file:weights.bin\n")
        for name, settings in (("parallel", {}), ("one stream", {"segments": 1})):
            cache = self.cache("cache-" + name.replace(" ", "-"))
            with self.sim("--cdn-max-request", "64M") as sim:
                result = self.warm.run(sim, manifest, cache, "--config", self.warm.config(settings))
                equal(result.returncode, 0, f"exit code of the {name} run\n" + describe(result))
                self.check_repos(sim, cache, {"test/big": {"weights.bin"}})
                log = sim.log()
                lines = cdn_lines(log)
            equal(sorted({line["status"] for line in lines}), [206], f"{name}: CDN answers")
            pieces = check_pieces_once(lines, size, name)
            check(all(b - a <= 64 * MIB for a, b in pieces), f"{name}: a request asked for more than 64 MiB: {pieces}")
            if name == "one stream":
                equal(len({line["connection"] for line in lines}), 1, f"{name}: CDN connections")
                equal(len(pieces), 2, f"{name}: ranges of a {size}-byte file: {pieces}")
                resolves = [line for line in log if line["class"] == "resolvers"]
                equal(len(resolves), 1, f"{name}: resolver requests for 2 ranges (the second goes to the signed URL)")

    def test_server_errors(self):
        """5xx answers are retried with backoff; past retry.max_attempts the entry fails with the status."""
        config = self.warm.config({"retry": {"max_attempts": 3, "base_delay": 0.2}})
        with self.sim("--fail-first", "1") as sim:
            result = self.warm.run(sim, self.warm.manifest("gpt2\n"), self.cache(), "--config", config)
            equal(result.returncode, 0, "exit code when every path fails once with 503\n" + describe(result))
            self.check_repos(sim, self.cache(), {"gpt2": None})
        with self.sim("--fail-rate", "1") as sim:
            result = self.warm.run(sim, self.warm.manifest("gpt2\n"), self.cache("failing"), "--config", config)
            log = sim.log()
        equal(result.returncode, 1, "exit code when the Hub always answers 503\n" + describe(result))
        row = summary_row(result, "gpt2")
        check(row and "failed" in row and "503" in row, f"the summary row must give the status: {row!r}")
        equal(len(log), 3, "requests with retry.max_attempts 3")

    def test_corrupt_retried(self):
        repos = {"gpt2": None, "jinaai/jina-embeddings-v2-base-en": None}
        manifest = self.warm.manifest("gpt2\njinaai/jina-embeddings-v2-base-en\n")
        with self.sim("--corrupt-first", "1") as sim:
            result = self.warm.run(sim, manifest, self.cache())
            equal(result.returncode, 0, "exit code when each file's first download is corrupt\n" + describe(result))
            corrupted = [line for line in sim.log() if "corrupt" in line.get("fault", "")]
            check(len(corrupted) >= 5, f"only {len(corrupted)} corrupt bodies were sent")
            self.check_repos(sim, self.cache(), repos)

    def test_segmented_corrupt(self):
        """A parallel download whose first piece carries one flipped byte (hashed straight from the
        receive buffers): the file fails its hash, is fetched again, and only the right bytes are
        published."""
        size = 24 * MIB
        self.big_repo(size)
        with self.sim("--corrupt-first", "1") as sim:
            result = self.warm.run(sim, self.warm.manifest("test/big file:weights.bin\n"), self.cache())
            equal(result.returncode, 0, "exit code when the first piece is corrupt\n" + describe(result))
            self.check_repos(sim, self.cache(), {"test/big": {"weights.bin"}})
            lines = cdn_lines(sim.log())
        corrupted = [line for line in lines if "corrupt" in line.get("fault", "")]
        equal([parse_range_start(line["range"]) for line in corrupted], [0], "corrupt pieces")
        fetched = sum(line["bytes"] for line in lines)
        check(2 * size <= fetched <= 2 * size + MIB, f"fetched {fetched} CDN bytes: the file twice, as one retry")

    def test_corrupt_always(self):
        """Every download corrupt: the files fail with a hash message and no blob is published."""
        cache = self.cache()
        rng = random.Random(7)
        self.add_repo("test/corrupt", {"config.json": b'{"a": 1}\n', "weights.bin": rng.randbytes(200 * 1024)})
        # Short backoff: the default (six attempts from 1 s, doubling) takes most of a minute.
        config = self.warm.config({"retry": {"max_attempts": 3, "base_delay": 0.2}})
        with self.sim("--corrupt-rate", "1") as sim:
            result = self.warm.run(sim, self.warm.manifest("test/corrupt\n", "corrupt.txt"), cache, "--config", config)
            attempts = [line for line in sim.log() if line["listener"] == "cdn"]
        equal(result.returncode, 1, "exit code when every download is corrupt\n" + describe(result))
        row = summary_row(result, "test/corrupt")
        check(row and "failed" in row and "hash" in row,
              f"summary row of the corrupt repo: {row!r}\n" + describe(result))
        blobs = os.path.join(cache, repo_folder("test/corrupt"), "blobs")
        published = [n for n in os.listdir(blobs) if not n.endswith(".incomplete")] if os.path.isdir(blobs) else []
        equal(published, [], "blobs published from corrupt downloads")
        equal(len(attempts), 3, "CDN downloads of the LFS file with retry.max_attempts 3")

    def test_ignore_range(self):
        repos = {"microsoft/phi-2": None, "gpt2": None}
        with self.sim("--ignore-range", "--reset-first", "1", "--reset-after", "600K") as sim:
            result = self.warm.run(sim, self.warm.manifest("microsoft/phi-2\ngpt2\n"), self.cache())
            equal(result.returncode, 0, "exit code when resumes get the whole file\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, self.cache(), repos)
        ignored = [line for line in cdn_lines(log) if "ignore-range" in line.get("fault", "")]
        check(ignored, "no ranged request was answered with the whole file; the test proves nothing")
        check(all(line["status"] == 200 for line in ignored), "ignored ranges must be 200")

    def test_expired_url(self):
        """The signed URL lives 1 s; the first body is cut at 1 MiB after 2 s. Whether the engine
        retries the old URL (403, then a new resolve) or resolves again at once, it must go on from
        the bytes on disk."""
        size = len(self.files("gpt2")["model.safetensors"])
        with self.sim("--url-ttl", "1", "--cdn-rate", "512K", "--reset-first", "1", "--reset-after", "1M") as sim:
            result = self.warm.run(sim, self.warm.manifest("gpt2 file:model.safetensors\n"), self.cache())
            equal(result.returncode, 0, "exit code when the signed URL expires mid-file\n" + describe(result))
            log = [line for line in sim.log() if line["listener"] == "cdn" or line["class"] == "resolvers"]
            self.check_repos(sim, self.cache(), {"gpt2": {"model.safetensors"}})
        trace = [(line["listener"], line["status"], parse_range_start(line["range"])) for line in log]
        cdn = [(status, start) for listener, status, start in trace if listener == "cdn"]
        check(len(cdn) >= 2 and cdn[0] == (200, None), f"the first download was not cut: {trace}")
        later = [(status, start) for status, start in cdn[1:] if status != 403]
        check(later and all(status == 206 and start >= MIB for status, start in later),
              f"after the link expired the download did not go on from the bytes on disk: {trace}")
        for i, (listener, status, _) in enumerate(trace):
            if listener == "cdn" and status == 403:
                check(any(t[0] == "hub" for t in trace[i + 1:]), f"no new resolve after the CDN's 403: {trace}")
        resolves = [t for t in trace if t[0] == "hub"]
        check(len(resolves) >= 2, f"the file was never resolved again after its link expired: {trace}")
        fetched = sum(line["bytes"] for line in log if line["listener"] == "cdn")
        check(fetched <= 1.1 * size, f"fetched {fetched} CDN bytes for a {size}-byte file")

    # ---- safety and tokens ----

    def test_hostile_listing(self):
        work = os.path.join(self.tmp, "work")
        sentinel = os.path.join(work, "sentinel")
        os.makedirs(sentinel)
        cache = os.path.join(work, "cache")
        before = set(os.listdir(work)) | {"cache"}
        root_before = set(os.listdir("/"))
        with self.sim("--hostile-listing") as sim:
            result = self.warm.run(sim, self.warm.manifest(MINILM + "\n"), cache)
        equal(result.returncode, 1, "exit code for a repo with unsafe file names\n" + describe(result))
        output = result.stdout + result.stderr
        check("../x" in output and "unsafe" in output, "no clear error about the unsafe path ../x\n" + describe(result))
        check("\x1b[31m" not in output and "\x01" not in output,
              "a control sequence from the server reached the output")
        equal(os.listdir(sentinel), [], "files in the sentinel folder next to the cache")
        equal(set(os.listdir(work)), before, "entries next to the cache")
        equal(set(os.listdir("/")) - root_before, set(), "new entries at /")
        equal(os.listdir(self.warm.cwd), [], "files in hfwarmd's working folder")
        equal(cache_escapes(cache), [], "paths under the cache that lead outside it")
        for name in ("x", "b", "abs"):
            check(not os.path.lexists(os.path.join(cache, name)), f"{name} was written at the cache root")

    def test_token_and_cdn(self):
        manifest = self.warm.manifest(f"gpt2\n{GATED}\n")
        with self.sim("--token", TOKEN) as sim:
            result = self.warm.run(sim, manifest, self.cache(), "--log-level", "debug", env={"HF_TOKEN": TOKEN})
            equal(result.returncode, 0, "exit code with HF_TOKEN and a gated repo\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, self.cache(), {"gpt2": None, GATED: None})
        check(TOKEN not in result.stdout and TOKEN not in result.stderr, "the token appears in hfwarmd's output")
        check(TOKEN[8:24] not in result.stdout + result.stderr, "part of the token appears in hfwarmd's output")
        cdn = cdn_lines(log)
        check(cdn, "no CDN request; the test proves nothing")
        equal([line["target"] for line in cdn if line["auth"]], [], "CDN requests that carried Authorization")
        hub = [line for line in log if line["listener"] == "hub"]
        equal([line["target"] for line in hub if not line["auth"]], [], "Hub requests without Authorization")

    def test_token_file(self):
        """No HF_TOKEN: the token comes from HF_TOKEN_PATH, else from HF_HOME/token."""
        token_path = os.path.join(self.tmp, "token-file")
        home_token = os.path.join(self.warm.env["HF_HOME"], "token")
        manifest = self.warm.manifest(f"{GATED}\n")
        with self.sim("--token", TOKEN) as sim:
            for name, path, env in (("HF_TOKEN_PATH", token_path, {"HF_TOKEN_PATH": token_path}),
                                    ("HF_HOME/token", home_token, {})):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(TOKEN + "\n")
                cache = self.cache(name.replace("/", "-"))
                result = self.warm.run(sim, manifest, cache, env=env)
                equal(result.returncode, 0, f"exit code for a gated repo with the token in {name}\n" + describe(result))
                check(TOKEN not in result.stdout + result.stderr, "the token appears in hfwarmd's output")
                self.check_repos(sim, cache, {GATED: None})
                os.remove(path)

    def test_gated_without_token(self):
        manifest = self.warm.manifest(f"{GATED}\n")
        with self.sim("--token", TOKEN) as sim:
            result = self.warm.run(sim, manifest, self.cache())
            log = sim.log()
        equal(result.returncode, 1, "exit code for a gated repo without a token\n" + describe(result))
        row = summary_row(result, GATED)
        check(row and "failed" in row and "gated" in row and "HF_TOKEN" in row,
              f"the summary row must say the repo is gated and how to get in: {row!r}\n" + describe(result))
        check(any(line["status"] == 401 for line in log), "the simulator never refused a request")
        snapshots = os.path.join(self.cache(), repo_folder(GATED), "snapshots")
        check(not os.path.exists(snapshots) or not any(os.scandir(snapshots)),
              "a gated file was cached without a token")

    # ---- a warm cache ----

    def test_warm_rerun(self):
        repos = ["gpt2", MINILM, GGUF_REPO, "datasets/hubsim/tiny-dataset"]
        manifest = self.warm.manifest(f"gpt2\n{MINILM}\n{GGUF_REPO} gguf:{GGUF_FILE}\ndatasets/hubsim/tiny-dataset\n")
        with self.sim() as sim:
            first = self.warm.run(sim, manifest, self.cache())
            equal(first.returncode, 0, "exit code of the first run\n" + describe(first))
            mark = len(sim.log())
            before = blob_stats(self.cache())
            second = self.warm.run(sim, manifest, self.cache())
            equal(second.returncode, 0, "exit code of the run on a warm cache\n" + describe(second))
            log = sim.log()[mark:]
            self.check_repos(sim, self.cache(), {"gpt2": None, MINILM: None, GGUF_REPO: {GGUF_FILE},
                                                 "datasets/hubsim/tiny-dataset": None})
        equal(blob_stats(self.cache()), before, "blobs (inode, size, mtime) after the run on a warm cache")
        targets = [line["target"] for line in log]
        equal(sum(line["bytes"] for line in cdn_lines(log)), 0, "CDN bytes on a warm cache")
        equal([line["target"] for line in log if line["class"] == "resolvers"], [], "resolver requests on a warm cache")
        check(len(log) <= len(repos), f"{len(log)} requests for {len(repos)} repos on a warm cache: {targets}")

    def test_pinned_recheck(self):
        """The re-check of an entry pinned to a commit whose snapshot is complete sends no request;
        a branch or tag costs one listing."""
        repo = "hubsim/refs-model"
        with self.sim() as sim:
            pinned = self.commit(sim, "gpt2")
            gguf_pinned = self.commit(sim, GGUF_REPO)
            manifest = self.warm.manifest(f"gpt2@{pinned}\n{GGUF_REPO}@{gguf_pinned} gguf:{GGUF_FILE}\n{repo}@v1.0\n")
            first = self.warm.run(sim, manifest, self.cache())
            equal(first.returncode, 0, "exit code of the first run\n" + describe(first))
            mark = len(sim.log())
            second = self.warm.run(sim, manifest, self.cache())
            equal(second.returncode, 0, "exit code of the re-check\n" + describe(second))
            log = sim.log()[mark:]
            check_repo(self.cache(), "gpt2", pinned, self.files("gpt2"), revision=pinned)
        targets = [line["target"] for line in log]
        equal(len(log), 1, f"requests of the re-check (one listing for {repo}@v1.0): {targets}")
        check(repo in targets[0] and "v1.0" in targets[0], f"the one request lists {repo}@v1.0: {targets}")
        for name in (f"gpt2@{pinned}", f"{GGUF_REPO}@{gguf_pinned}", f"{repo}@v1.0"):
            row = summary_row(second, name)
            check(row and " ready " in row, f"re-check summary row of {name}: {row!r}\n" + describe(second))

    def test_offline(self):
        manifest = self.warm.manifest(f"gpt2\n{GGUF_REPO} gguf:{GGUF_FILE}\ndslim/bert-base-NER optional\n")
        with self.sim() as sim:
            first = self.warm.run(sim, manifest, self.cache())
            equal(first.returncode, 0, "exit code of the online run\n" + describe(first))
            mark = len(sim.log())
            warm = self.warm.run(None, manifest, self.cache(), "--offline")
            empty = self.warm.run(None, manifest, self.cache("empty"), "--offline")
            env_offline = self.warm.run(sim, manifest, self.cache(), env={"HF_HUB_OFFLINE": "1"})
            equal(len(sim.log()), mark, "requests that reached the simulator in offline runs")
        equal(warm.returncode, 0, "exit code of --offline on a warm cache\n" + describe(warm))
        for repo in ("gpt2", GGUF_REPO):
            row = summary_row(warm, repo)
            check(row and " ready " in row, f"offline summary row of {repo}: {row!r}\n" + describe(warm))
        equal(env_offline.returncode, 0, "exit code with HF_HUB_OFFLINE=1 on a warm cache\n" + describe(env_offline))
        equal(empty.returncode, 1, "exit code of --offline on an empty cache\n" + describe(empty))
        row = summary_row(empty, "gpt2")
        check(row and " missing " in row, f"offline summary row of gpt2 on an empty cache: {row!r}")
        # The summary line of `hfwarmctl status`, in the same state names.
        check("\n3 entries: 2 ready, 0 failed, 1 missing; 1 optional not ready; offline: read from " in warm.stdout,
              "offline summary line on a warm cache\n" + describe(warm))
        check("\n3 entries: 0 ready, 0 failed, 3 missing; 1 optional not ready; offline: read from " in empty.stdout,
              "offline summary line on an empty cache\n" + describe(empty))

    def test_bad_manifest(self):
        manifest = self.warm.manifest("gpt2\n# a comment\n\n  microsoft/phi-2 inclde:*.json\n")
        with self.sim() as sim:
            result = self.warm.run(sim, manifest, self.cache())
            requests = sim.log() if os.path.exists(sim.log_file) else []
        equal(result.returncode, 2, "exit code for a bad manifest\n" + describe(result))
        check(f"{manifest}:4:19" in result.stderr,
              f"stderr must give file:line:col ({manifest}:4:19)\n" + describe(result))
        check("inclde" in result.stderr, "stderr must quote the bad spec\n" + describe(result))
        equal(requests, [], "requests sent for a bad manifest")
        check(not os.path.exists(os.path.join(self.cache(), "models--gpt2")), "a repo folder was created")

    # ---- the Hub's limits ----

    def test_rate_limit(self):
        rng = random.Random(429)
        files = {f"part-{i:02d}.txt": rng.randbytes(rng.randint(100, 2000)) for i in range(40)}
        self.add_repo("test/many-files", files)
        window = 3.0
        with self.sim("--resolver-quota", "20", "--window", str(int(window))) as sim:
            result = self.warm.run(sim, self.warm.manifest("test/many-files\n"), self.cache())
            equal(result.returncode, 0, "exit code under a resolver quota of 20 per 3 s\n" + describe(result))
            log = [line for line in sim.log() if line["class"] == "resolvers"]
            self.check_repos(sim, self.cache(), {"test/many-files": None})
        check(len(log) >= 40, f"only {len(log)} resolver requests for 40 files")
        # Rebuild the simulator's fixed windows: each starts at the first request after the last ended.
        refused_per_window = []
        window_end = None
        for line in log:
            t = time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + line["time"][19:-1])
            if window_end is None or t >= window_end:
                window_end = t + window
                refused_per_window.append(0)
            refused_per_window[-1] += line["status"] == 429
        check(len(refused_per_window) >= 2, f"40 files went through one window of 20: {refused_per_window}")
        check(max(refused_per_window) <= 1, f"429s per {window:.0f} s window: {refused_per_window}")


def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "engine-test-")


if __name__ == "__main__":
    sys.exit(main())
