#!/usr/bin/env python3
"""Tests of hfwarm-hubsim: each endpoint's status, headers and bytes, pagination, rate limits, faults.

Usage: hubsim_test.py HUBSIM_EXE CASE   (meson runs one process per case, in parallel)
"""

import json
import os
import re
import sys
import tempfile
import threading
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import LFS_THRESHOLD, check, equal, git_blob_sha1, repo_files, run_case, sha256  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEMO_REPOS = [
    "Babelscape/wikineural-multilingual-ner", MINILM, "jinaai/jina-embeddings-v2-base-en",
    "cross-encoder/ms-marco-MiniLM-L-12-v2", "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "bert-base-uncased", "gpt2",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "microsoft/phi-2",
]


class Case:
    def __init__(self, exe, tmp):
        self.exe = exe
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(exe, "demo", self.fixtures)

    def sim(self, *args):
        return Simulator(self.exe, self.fixtures, *args, workdir=tempfile.mkdtemp(dir=self.tmp))

    def files(self, repo):
        return repo_files(os.path.join(self.fixtures, repo))

    # ---- fixtures ----

    def test_gen_profiles(self):
        again = os.path.join(self.tmp, "again")
        generate(self.exe, "demo", again)
        for repo in DEMO_REPOS:
            first, second = self.files(repo), repo_files(os.path.join(again, repo))
            equal(sorted(second), sorted(first), f"files of {repo} in a second generation")
            check(all(first[p] == second[p] for p in first), f"gen demo is not deterministic for {repo}")
            weights = [p for p, data in first.items() if len(data) > LFS_THRESHOLD]
            texts = [p for p, data in first.items() if len(data) <= LFS_THRESHOLD]
            check(weights and texts, f"{repo} needs both weights and small text files")
            for p in weights:
                data = first[p]
                check(1 << 20 <= len(data) <= 4 << 20, f"{repo}/{p}: {len(data)} bytes is not within 1-4 MiB")
                check(len(zlib.compress(data[:1 << 20], 1)) > (1 << 20) * 0.99, f"{repo}/{p} compresses")
        check(not os.path.exists(os.path.join(self.fixtures, "dslim")), "dslim/bert-base-NER must be absent")
        check("1_Pooling/config.json" in self.files(MINILM), "nested 1_Pooling/config.json is missing")
        check("tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf" in self.files("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"),
              "the GGUF quantization of the manifest is missing")

        small = os.path.join(self.tmp, "small")
        generate(self.exe, "small-files", small)
        repos = os.listdir(os.path.join(small, "small"))
        check(len(repos) >= 40, f"small-files has {len(repos)} repos, wants at least 40")
        for repo in repos:
            files = repo_files(os.path.join(small, "small", repo))
            check(len(files) >= 50, f"small/{repo} has {len(files)} files, wants at least 50")
            binaries = [d for p, d in files.items() if p.endswith(".bin")]
            check(all(1024 <= len(d) <= 16384 for d in binaries), f"small/{repo} has a file outside 1-16 KiB")

        large = os.path.join(self.tmp, "large")
        generate(self.exe, "large", large, "--size", "6M", "--files", "3")
        files = repo_files(os.path.join(large, "large", "weights"))
        weights = sorted(p for p in files if p.endswith(".safetensors"))
        equal(len(weights), 3, "weight files of large --files 3")
        equal(sum(len(files[p]) for p in weights), 6 << 20, "total size of large --size 6M")

    # ---- serving ----

    def test_ready_file_and_tls(self):
        with self.sim() as sim:
            equal(sorted(sim.ready), ["ca", "cdn", "hub", "pid"], "ready file keys")
            equal(sim.ready["pid"], sim.process.pid, "pid in the ready file")
            check(os.path.isabs(sim.ca), "the CA path must be absolute")
            check(re.fullmatch(r"https://127\.0\.0\.1:\d+", sim.hub), f"hub URL {sim.hub}")
            check(re.fullmatch(r"https://127\.0\.0\.1:\d+", sim.cdn), f"cdn URL {sim.cdn}")
            check(sim.hub != sim.cdn, "hub and cdn must be two listeners")
            # The certificate names localhost too; verification uses the CA of the ready file.
            port = sim.hub.rsplit(":", 1)[1]
            equal(sim.get(f"https://localhost:{port}/api/models/gpt2").status, 200, "request to localhost")
            equal(sim.get(sim.cdn + "/lfs/none").status, 403, "unsigned CDN URL")
        tls = os.path.join(self.tmp, "tls")
        cas = []
        for _ in range(2):
            with self.sim("--tls-dir", tls) as sim:
                equal(os.path.dirname(sim.ca), tls, "the CA lives in --tls-dir")
                equal(sim.get("/api/models/gpt2").status, 200, "TLS with the kept CA")
                with open(sim.ca) as f:
                    cas.append(f.read())
        equal(cas[0], cas[1], "a second start reuses the CA of --tls-dir")

    def test_revision_info(self):
        files = self.files(MINILM)
        with self.sim() as sim:
            r = sim.get(f"/api/models/{MINILM}/revision/main?blobs=true")
            equal(r.status, 200, "revision status")
            check(r.header("Content-Type").startswith("application/json"), "revision content type")
            info = r.json()
            sha = info["sha"]
            check(re.fullmatch(r"[0-9a-f]{40}", sha), f"sha {sha}")
            equal(info["id"], MINILM, "id")
            siblings = {s["rfilename"]: s for s in info["siblings"]}
            equal(sorted(siblings), sorted(files), "siblings")
            for path, data in files.items():
                s = siblings[path]
                equal(s["size"], len(data), f"size of {path}")
                if len(data) > LFS_THRESHOLD:
                    equal(s["lfs"]["sha256"], sha256(data), f"lfs.sha256 of {path}")
                    equal(s["lfs"]["size"], len(data), f"lfs.size of {path}")
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(data)}\nsize {len(data)}\n"
                    equal(s["lfs"]["pointerSize"], len(pointer), f"pointerSize of {path}")
                    equal(s["blobId"], git_blob_sha1(pointer.encode()), f"blobId of the pointer of {path}")
                else:
                    check("lfs" not in s, f"{path} is not an LFS file")
                    equal(s["blobId"], git_blob_sha1(data), f"blobId of {path}")
            plain = sim.get(f"/api/models/{MINILM}/revision/main").json()
            check("size" not in plain["siblings"][0], "siblings carry sizes only with blobs=true")
            equal(plain["sha"], sha, "sha is stable")
            equal(sim.get(f"/api/models/{MINILM}/revision/{sha}").json()["sha"], sha, "revision by commit")
            equal(sim.get(f"/api/models/{MINILM}").json()["sha"], sha, "repo info without revision")

            refs = "hubsim/refs-model"
            main = sim.get(f"/api/models/{refs}/revision/main").json()["sha"]
            dev = sim.get(f"/api/models/{refs}/revision/dev").json()
            check(dev["sha"] != main, "branch dev has its own commit")
            check("extra/notes.txt" in [s["rfilename"] for s in dev["siblings"]], "dev lists its own files")
            equal(sim.get(f"/api/models/{refs}/revision/v1.0").json()["sha"], main, "tag v1.0 points at main")
            equal(sim.get(f"/api/models/{refs}/revision/refs%2Fpr%2F1").json()["sha"], dev["sha"], "refs/pr/1")

            r = sim.get(f"/api/models/{MINILM}/revision/nope")
            equal((r.status, r.header("X-Error-Code")), (404, "RevisionNotFound"), "unknown revision")
            check(r.header("X-Error-Message"), "X-Error-Message on errors")
            r = sim.get("/api/models/dslim/bert-base-NER/revision/main")
            equal((r.status, r.header("X-Error-Code")), (404, "RepoNotFound"), "absent repo")
            ds = sim.get("/api/datasets/hubsim/tiny-dataset/revision/main")
            equal(ds.status, 200, "dataset revision")
            check("data/train.parquet" in [s["rfilename"] for s in ds.json()["siblings"]], "dataset siblings")
            equal(sim.get("/api/models/hubsim/tiny-dataset/revision/main").status, 404, "a dataset is no model")

    def test_tree_pagination(self):
        files = self.files(MINILM)
        with self.sim("--page-size", "3") as sim:
            url, entries, pages = f"/api/models/{MINILM}/tree/main?recursive=true", [], 0
            while url:
                r = sim.get(url)
                equal(r.status, 200, f"tree page {pages}")
                page = r.json()
                check(len(page) <= 3, "page size 3")
                entries += page
                pages += 1
                link = r.header("Link")
                url = None
                if link:
                    m = re.fullmatch(r'<(https://[^>]+)>; rel="next"', link)
                    check(m, f"Link header {link!r}")
                    url = m.group(1)
                    check(url.startswith(sim.hub + "/api/"), f"next URL {url} must be absolute on the hub")
            check(pages >= 4, f"{len(entries)} entries in {pages} pages")
            by_path = {e["path"]: e for e in entries}
            equal(len(by_path), len(entries), "no entry repeated across pages")
            equal(sorted(p for p, e in by_path.items() if e["type"] == "file"), sorted(files), "files of the tree")
            equal(by_path["1_Pooling"]["type"], "directory", "folder entry")
            for path, data in files.items():
                e = by_path[path]
                equal(e["size"], len(data), f"size of {path}")
                if len(data) > LFS_THRESHOLD:
                    equal(e["lfs"]["oid"], sha256(data), f"lfs.oid of {path}")
                else:
                    equal(e["oid"], git_blob_sha1(data), f"oid of {path}")

            top = []
            url = f"/api/models/{MINILM}/tree/main"
            while url:
                r = sim.get(url)
                top += r.json()
                link = r.header("Link")
                url = re.fullmatch(r"<([^>]+)>.*", link).group(1) if link else None
            check("1_Pooling/config.json" not in [e["path"] for e in top], "non-recursive listing stays at the top")
            check("1_Pooling" in [e["path"] for e in top], "non-recursive listing shows the folder")
            sub = sim.get(f"/api/models/{MINILM}/tree/main/1_Pooling").json()
            equal([e["path"] for e in sub], ["1_Pooling/config.json"], "listing of a folder")
            expanded = sim.get(f"/api/models/{MINILM}/tree/main/1_Pooling?expand=true").json()
            sha = sim.get(f"/api/models/{MINILM}/revision/main").json()["sha"]
            equal(expanded[0]["lastCommit"]["id"], sha, "expand gives lastCommit")
            r = sim.get(f"/api/models/{MINILM}/tree/main/nope")
            equal((r.status, r.header("X-Error-Code")), (404, "EntryNotFound"), "tree of a missing folder")

    def test_paths_info(self):
        files = self.files(MINILM)
        with self.sim() as sim:
            sha = sim.get(f"/api/models/{MINILM}/revision/main").json()["sha"]
            body = json.dumps({"paths": ["config.json", "model.safetensors", "missing.txt"], "expand": True})
            r = sim.request("POST", f"/api/models/{MINILM}/paths-info/main", {"Content-Type": "application/json"},
                            body)
            equal(r.status, 200, "paths-info status")
            entries = {e["path"]: e for e in r.json()}
            equal(sorted(entries), ["config.json", "model.safetensors"], "paths-info leaves out missing paths")
            equal(entries["config.json"]["oid"], git_blob_sha1(files["config.json"]), "oid")
            equal(entries["model.safetensors"]["lfs"]["oid"], sha256(files["model.safetensors"]), "lfs.oid")
            equal(entries["config.json"]["lastCommit"]["id"], sha, "lastCommit with expand")
            form = "paths=1_Pooling%2Fconfig.json&paths=1_Pooling&expand=false"
            r = sim.request("POST", f"/api/models/{MINILM}/paths-info/{sha}",
                            {"Content-Type": "application/x-www-form-urlencoded"}, form)
            entries = {e["path"]: e for e in r.json()}
            equal(sorted(entries), ["1_Pooling", "1_Pooling/config.json"], "paths-info with a form body")
            equal(entries["1_Pooling"]["type"], "directory", "folder in paths-info")
            check("lastCommit" not in entries["1_Pooling/config.json"], "no lastCommit without expand")

    def test_resolve_git_file(self):
        files = self.files(MINILM)
        data = files["1_Pooling/config.json"]
        url = f"/{MINILM}/resolve/main/1_Pooling/config.json"
        with self.sim() as sim:
            sha = sim.get(f"/api/models/{MINILM}/revision/main").json()["sha"]
            for r in (sim.head(url), sim.get(url)):
                equal(r.status, 200, "status")
                equal(r.header("ETag"), f'"{git_blob_sha1(data)}"', "ETag is the quoted git blob sha1")
                equal(r.header("X-Repo-Commit"), sha, "X-Repo-Commit")
                equal(r.header("Content-Length"), str(len(data)), "Content-Length")
                check(r.header("Location") is None, "a git file is served directly")
            equal(sim.get(url).body, data, "bytes of a git file")
            r = sim.get(url, {"Range": "bytes=0-0"})
            equal((r.status, r.body, r.header("Content-Range")), (206, data[:1], f"bytes 0-0/{len(data)}"), "probe")
            r = sim.get(url, {"Range": "bytes=10-"})
            equal((r.status, r.body), (206, data[10:]), "open range")
            r = sim.get(url, {"Range": "bytes=-5"})
            equal((r.status, r.body), (206, data[-5:]), "suffix range")
            r = sim.get(url, {"Range": f"bytes={len(data)}-"})
            equal((r.status, r.header("Content-Range")), (416, f"bytes */{len(data)}"), "range past the end")
            equal(sim.get(f"/{MINILM}/resolve/{sha}/config.json").body, files["config.json"], "resolve by sha")
            ds = repo_files(os.path.join(self.fixtures, "datasets/hubsim/tiny-dataset"))
            equal(sim.get("/datasets/hubsim/tiny-dataset/resolve/main/data/train.csv").body, ds["data/train.csv"],
                  "dataset file")
            r = sim.get(f"/{MINILM}/resolve/main/config.json", {"Accept-Encoding": "gzip"})
            check(r.header("Content-Encoding") is None, "bodies are never compressed")

    def test_resolve_lfs_and_cdn(self):
        files = self.files(MINILM)
        data = files["model.safetensors"]
        url = f"/{MINILM}/resolve/main/model.safetensors"
        with self.sim() as sim:
            sha = sim.get(f"/api/models/{MINILM}/revision/main").json()["sha"]
            for r in (sim.head(url), sim.get(url), sim.get(url, {"Range": "bytes=0-0"})):
                equal(r.status, 302, "an LFS file redirects")
                equal(r.header("X-Linked-Etag"), f'"{sha256(data)}"', "X-Linked-Etag")
                equal(r.header("X-Linked-Size"), str(len(data)), "X-Linked-Size")
                equal(r.header("X-Repo-Commit"), sha, "X-Repo-Commit")
                location = r.header("Location")
                check(re.fullmatch(re.escape(sim.cdn) + r"/lfs/[0-9a-f]{64}\?expires=\d+&sig=[0-9a-f]{64}", location),
                      f"Location {location}")
                check(int(r.header("Content-Length")) != len(data), "a redirect's length is not the file's")
            r = sim.get(location)
            equal((r.status, r.body), (200, data), "CDN bytes")
            equal(r.header("ETag"), f'"{sha256(data)}"', "CDN ETag")
            check(r.header("RateLimit") is None, "the CDN has no quota")
            r = sim.head(location)
            equal((r.status, r.header("Content-Length")), (200, str(len(data))), "CDN HEAD")
            r = sim.get(location, {"Range": "bytes=100-1099"})
            equal((r.status, r.body, r.header("Content-Range")), (206, data[100:1100], f"bytes 100-1099/{len(data)}"),
                  "CDN range")
            r = sim.get(location, {"Range": "bytes=0-0"})
            equal((r.status, r.body), (206, data[:1]), "CDN probe")
            equal(sim.get(location, {"Range": f"bytes={len(data)}-"}).status, 416, "CDN range past the end")
            equal(sim.get(location[:-1] + ("0" if location[-1] != "0" else "1")).status, 403, "bad signature")
            equal(sim.get(location.split("?")[0]).status, 403, "unsigned URL")
        with self.sim("--url-ttl", "1") as sim:
            location = sim.get(url).header("Location")
            time.sleep(2.2)
            r = sim.get(location)
            equal(r.status, 403, "expired URL")
            check(b"expired" in r.body, "the 403 says the URL expired")

    def test_lfs_sha256_setting(self):
        """`lfs_sha256` in .hubsim.json names an LFS file by the given sha256 without hashing it (here a
        value that is not the content's, to show it is taken as given); a path that is no LFS file of
        the main tree, or a value that is no sha256, is refused at start."""
        repo = "test/given"
        data = bytes(range(256)) * 1024
        given = sha256(b"a fixture too large to hash at start")
        folder = os.path.join(self.fixtures, repo)
        os.makedirs(folder)
        for name, content in (("weights.bin", data), ("config.json", b"{}\n")):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)
        settings = os.path.join(folder, ".hubsim.json")
        with open(settings, "w") as f:
            json.dump({"lfs_sha256": {"weights.bin": given}}, f)
        with self.sim() as sim:
            info = sim.get(f"/api/models/{repo}/revision/main?blobs=true").json()
            siblings = {s["rfilename"]: s for s in info["siblings"]}
            equal(siblings["weights.bin"]["lfs"]["sha256"], given, "lfs.sha256 of the listing")
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{given}\nsize {len(data)}\n"
            equal(siblings["weights.bin"]["blobId"], git_blob_sha1(pointer.encode()), "blobId of the pointer")
            r = sim.get(f"/{repo}/resolve/main/weights.bin")
            equal((r.status, r.header("X-Linked-Etag")), (302, f'"{given}"'), "resolve of the LFS file")
            check(f"/lfs/{given}?" in r.header("Location"), f"the CDN URL names the sha256: {r.header('Location')}")
            equal(sim.get(r.header("Location")).body, data, "CDN bytes")
        for value, message in (({"config.json": given}, "'config.json', which is not an LFS file"),
                               ({"absent.bin": given}, "'absent.bin', which is not a file of the main tree"),
                               ({"weights.bin": given.upper()}, "lfs_sha256.weights.bin must be 64 lower-case hex")):
            with open(settings, "w") as f:
                json.dump({"lfs_sha256": value}, f)
            try:
                with self.sim():
                    pass
                raise AssertionError(f"the simulator started with lfs_sha256 {value}")
            except RuntimeError as e:
                check(message in str(e) and settings in str(e),
                      f"the start error names {settings} and says {message!r}: {e}")

    def test_errors_and_redirects(self):
        with self.sim("--token", "hf_good") as sim:
            r = sim.head("/gpt2/resolve/main/missing.json")
            equal((r.status, r.header("X-Error-Code")), (404, "EntryNotFound"), "missing file")
            check(re.fullmatch(r"[0-9a-f]{40}", r.header("X-Repo-Commit") or ""), "404 carries X-Repo-Commit")
            r = sim.head("/dslim/bert-base-NER/resolve/main/config.json")
            equal((r.status, r.header("X-Error-Code")), (404, "RepoNotFound"), "absent repo")
            r = sim.head("/gpt2/resolve/nope/config.json")
            equal((r.status, r.header("X-Error-Code")), (404, "RevisionNotFound"), "unknown revision")
            gated = "/hubsim/gated-model/resolve/main/config.json"
            r = sim.head(gated)
            equal((r.status, r.header("X-Error-Code")), (401, "GatedRepo"), "gated repo without a token")
            equal(sim.head(gated, {"Authorization": "Bearer hf_bad"}).status, 401, "gated repo with a wrong token")
            equal(sim.head(gated, {"Authorization": "Bearer hf_good"}).status, 200, "gated repo with the token")
            r = sim.head("/hubsim/old-name/resolve/main/config.json")
            equal((r.status, r.header("Location")), (307, "/hubsim/refs-model/resolve/main/config.json"), "renamed")
            r = sim.get("/api/models/hubsim/old-name/revision/main")
            equal((r.status, r.header("Location")), (307, "/api/models/hubsim/refs-model/revision/main"),
                  "renamed repo on the API")
            r = sim.head("/GPT2/resolve/main/config.json")
            equal((r.status, r.header("Location")), (307, "/gpt2/resolve/main/config.json"), "id in the wrong case")
            equal(sim.follow("/hubsim/old-name/resolve/main/config.json").body,
                  self.files("hubsim/refs-model")["config.json"], "following the rename")

    def test_rate_limits(self):
        with self.sim("--api-quota", "3", "--resolver-quota", "2", "--window", "3") as sim:
            api = "/api/models/gpt2/revision/main"
            for remaining in (2, 1, 0):
                r = sim.get(api)
                equal(r.status, 200, "within the API quota")
                check(re.fullmatch(f'"api";r={remaining};t=[1-3]', r.header("RateLimit")),
                      f"RateLimit {r.header('RateLimit')} with {remaining} left")
                equal(r.header("RateLimit-Policy"), '"fixed window";"api";q=3;w=3', "RateLimit-Policy")
            r = sim.get(api)
            equal(r.status, 429, "over the API quota")
            check(re.fullmatch(r'"api";r=0;t=[1-3]', r.header("RateLimit")), f"RateLimit on 429 {r.header('RateLimit')}")
            check(re.fullmatch(r"[1-3]", r.header("Retry-After") or ""), "Retry-After on 429")
            resolve = "/gpt2/resolve/main/config.json"
            limit = sim.head(resolve).header("RateLimit")
            check(re.fullmatch(r'"resolvers";r=1;t=[1-3]', limit), f"resolvers count apart from api: {limit}")
            equal(sim.head(resolve).status, 200, "second resolve")
            r = sim.head(resolve)
            equal(r.status, 429, "over the resolver quota")
            equal(r.header("RateLimit-Policy"), '"fixed window";"resolvers";q=2;w=3', "resolver policy")
            token = {"Authorization": "Bearer hf_other"}
            equal(sim.head(resolve, token).status, 200, "a token is its own identity")
            time.sleep(3.2)
            equal(sim.get(api).status, 200, "a new window")
            log = sim.log()
            check(all(line["status"] != 429 or line.get("fault") == "rate-limit" for line in log), "429 in the log")
            # Each counted request names its window, numbered per identity and class.
            equal([(line["class"], line["auth"], line["window"]) for line in log],
                  [("api", False, 1)] * 4 + [("resolvers", False, 1)] * 3 + [("resolvers", True, 1), ("api", False, 2)],
                  "the window of each request in the log")

    def test_request_log(self):
        with self.sim("--token", "hf_secret_token") as sim:
            sim.get("/api/models/gpt2/revision/main")
            sim.get(f"/{MINILM}/resolve/main/config.json", {"Range": "bytes=0-9"})
            sim.follow(f"/{MINILM}/resolve/main/model.safetensors", {"Authorization": "Bearer hf_secret_token"})
            sim.get("/nothing")
            log = sim.log()
            equal(len(log), 5, "one line per request")
            for line in log:
                for key in ("time", "method", "target", "listener", "connection", "class", "status", "bytes", "range",
                            "content_range", "auth"):
                    check(key in line, f"log line without {key}: {line}")
            equal([l["connection"] for l in log], [1, 2, 3, 4, 5], "connection numbers (one connection per request)")
            equal([l["class"] for l in log], ["api", "resolvers", "resolvers", "cdn", "other"], "classes")
            equal([l["listener"] for l in log], ["hub", "hub", "hub", "cdn", "hub"], "listeners")
            equal(log[1]["range"], "bytes=0-9", "range")
            equal((log[1]["status"], log[1]["bytes"]), (206, 10), "status and body bytes")
            equal([l["content_range"] for l in log],
                  [None, f"bytes 0-9/{len(self.files(MINILM)['config.json'])}", None, None, None], "Content-Range")
            equal(log[3]["bytes"], len(self.files(MINILM)["model.safetensors"]), "CDN body bytes")
            equal([l["auth"] for l in log], [False, False, True, False, False], "auth flags")
            with open(sim.log_file) as f:
                check("hf_secret_token" not in f.read(), "the token must never be logged")

    def test_keep_alive_and_concurrency(self):
        files = self.files(MINILM)
        with self.sim() as sim:
            conn = sim.connection(sim.hub)
            for path in ("config.json", "vocab.txt", "1_Pooling/config.json"):
                conn.request("GET", f"/{MINILM}/resolve/main/{path}")
                r = conn.getresponse()
                equal((r.status, r.read()), (200, files[path]), f"{path} on a kept-alive connection")
            conn.close()

            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            errors = []

            def client(n):
                try:
                    for i in range(4):
                        if (n + i) % 2:
                            equal(sim.get(location).body, files["model.safetensors"], "concurrent CDN body")
                        else:
                            equal(sim.get(f"/{MINILM}/resolve/main/tokenizer.json").body, files["tokenizer.json"],
                                  "concurrent hub body")
                except Exception as e:  # noqa: BLE001 - reported below with the others
                    errors.append(e)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            check(not errors, f"{len(errors)} of 64 concurrent requests failed: {errors[:3]}")

    # ---- faults ----

    def test_fault_fail(self):
        url = "/gpt2/resolve/main/config.json"
        with self.sim("--fail-first", "2", "--fail-status", "502") as sim:
            equal([sim.head(url).status for _ in range(3)], [502, 502, 200], "the first two requests fail")
            equal(sim.log()[0]["fault"], "fail", "fault in the log")
        runs = []
        for _ in range(2):
            with self.sim("--fail-rate", "0.5", "--seed", "7") as sim:
                runs.append([sim.head(url).status for _ in range(16)])
        equal(runs[0], runs[1], "the same seed fails the same requests")
        check(503 in runs[0] and 200 in runs[0], f"a rate of 0.5 fails some requests: {runs[0]}")

    def test_fault_reset(self):
        data = self.files(MINILM)["model.safetensors"]
        with self.sim("--reset-after", "1000000") as sim:
            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            r = sim.get(location)
            check(r.error is not None, "the body is cut")
            equal(len(r.body), 1000000, "bytes before the reset")
            # Resuming with Range moves another 1000000 bytes each time, until the file is whole.
            got, requests = b"", 0
            while len(got) < len(data):
                r = sim.get(location, {"Range": f"bytes={len(got)}-"})
                check(r.status == 206, f"resume status {r.status}")
                got += r.body
                requests += 1
            equal(got, data, "a resumed download is whole")
            equal(requests, (len(data) + 999999) // 1000000, "requests to resume")
            resets = [l for l in sim.log() if l.get("fault") == "reset"]
            check(resets and all(l["bytes"] == 1000000 for l in resets), "resets in the log with bytes sent")
        with self.sim("--reset-first", "1") as sim:
            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            first = sim.get(location)
            check(first.error is not None and len(first.body) < len(data), "the first body is cut")
            equal(sim.get(location).body, data, "the second body is whole")
            git = sim.get(f"/{MINILM}/resolve/main/tokenizer.json")
            check(git.error is not None, "git files are cut too")

    def test_fault_stall_and_rate(self):
        files = self.files(MINILM)
        with self.sim("--stall", "1.5", "--stall-first", "1") as sim:
            url = f"/{MINILM}/resolve/main/vocab.txt"
            start = time.monotonic()
            equal(sim.get(url).body, files["vocab.txt"], "a stalled body arrives whole")
            check(time.monotonic() - start >= 1.4, "the body stalled")
            start = time.monotonic()
            sim.get(url)
            check(time.monotonic() - start < 1.0, "only the first body stalls")
        data = files["model.safetensors"]
        with self.sim("--cdn-rate", "2M") as sim:
            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            start = time.monotonic()
            equal(sim.get(location).body, data, "a capped body arrives whole")
            elapsed = time.monotonic() - start
            expected = len(data) / (2 << 20)
            check(elapsed >= expected * 0.9, f"{len(data)} bytes at 2 MiB/s took {elapsed:.2f} s")

    def test_fault_corrupt(self):
        data = self.files(MINILM)["model.safetensors"]
        with self.sim("--corrupt-first", "1") as sim:
            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            bad = sim.get(location).body
            equal(len(bad), len(data), "a corrupt body keeps its length")
            equal(sum(a != b for a, b in zip(bad, data)), 1, "exactly one byte differs")
            equal(sim.get(location).body, data, "the next body is intact")
            equal(sim.log()[1]["fault"], "corrupt", "corruption in the log")

    def test_fault_ignore_range(self):
        files = self.files(MINILM)
        with self.sim("--ignore-range") as sim:
            r = sim.get(f"/{MINILM}/resolve/main/config.json", {"Range": "bytes=5-"})
            equal((r.status, r.body), (200, files["config.json"]), "git file: 200 and the whole body")
            location = sim.get(f"/{MINILM}/resolve/main/model.safetensors").header("Location")
            r = sim.get(location, {"Range": "bytes=5-"})
            equal((r.status, r.body), (200, files["model.safetensors"]), "CDN: 200 and the whole body")
            check(r.header("Content-Range") is None, "no Content-Range on a 200")

    def test_fault_hostile_listing(self):
        hostile = ["../x", "/abs", "a/../../b", "dir\\evil.bin", "nul\0byte", "ctrl\x01\x1b[31mname"]
        with self.sim("--hostile-listing") as sim:
            tree = [e["path"] for e in sim.get(f"/api/models/{MINILM}/tree/main?recursive=true").json()]
            siblings = [s["rfilename"] for s in sim.get(f"/api/models/{MINILM}/revision/main").json()["siblings"]]
            for name in hostile:
                check(name in tree, f"{name!r} missing from the tree listing")
                check(name in siblings, f"{name!r} missing from the siblings")
            check("config.json" in tree, "real files stay listed")


def main():
    exe, case = sys.argv[1], sys.argv[2]
    return run_case(lambda tmp: Case(exe, tmp), case, "hubsim-test-")


if __name__ == "__main__":
    sys.exit(main())
