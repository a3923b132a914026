#!/usr/bin/env python3
"""Clients written by others read the cache hfwarm warms from hfwarm-hubsim, with no network:
@huggingface/hub (JS, installed in tests/interop by scripts/test) and the offline lookups of
huggingface_hub and hf-hub 0.x (offline_lookup.py, written from docs/hub-protocol.md 1.11 and 5.2).

usage: interop_test.py HFWARMD HUBSIM_EXE SOURCE_ROOT CASE   (meson runs one process per case)
"""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

SOURCE_ROOT = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", ".."))
INTEROP_DIR = os.path.join(SOURCE_ROOT, "tests", "interop")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "hubsim"))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "support"))
sys.path.insert(0, INTEROP_DIR)
import offline_lookup as lookup  # noqa: E402
from hfwarm_testing import check, equal, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import Warm, api_path, describe, repo_folder, select, snapshot_files  # noqa: E402

DEMO_MANIFEST = os.path.join(SOURCE_ROOT, "config", "manifest.example.txt")
JS_CLIENT = os.path.join(INTEROP_DIR, "js_client.cjs")
REFS_MODEL = "hubsim/refs-model"
# What hfwarm writes and @huggingface/hub 2.17 does not, as (path pattern under the cache, why).
# The JS client also writes no .no_exist markers and no refs/<sha> (neither appears in the demo warm).
KNOWN_ONLY_HFWARM = [
    (".locks", "hfwarm takes huggingface_hub's locks (.locks/<repo folder>/<etag>.lock); the JS client takes none"),
    (".locks/*", "lock files stay after the run, as huggingface_hub leaves them"),
    ("CACHEDIR.TAG", "written by huggingface_hub >= 1.9 and hfwarm at the cache root; not by the JS client"),
    ("*/trees", "trees/<commit>.json, the listing huggingface_hub >= 1.22 checks offline; the JS client writes none"),
    ("*/trees/*.json", "the same"),
]


class Entry:
    """One manifest line: repo (as written, e.g. `datasets/org/name`), revision and selection."""

    def __init__(self, line):
        words = line.split()
        self.repo, _, revision = words[0].partition("@")
        self.revision = revision or "main"
        self.files, self.includes, self.excludes = [], [], []
        self.optional = False
        for word in words[1:]:
            kind, _, value = word.partition(":")
            if kind in ("file", "gguf"):
                self.files.append(value)
            elif kind == "include":
                self.includes.append(value)
            elif kind == "exclude":
                self.excludes.append(value)
            elif kind == "revision":
                self.revision = value
            elif word == "optional":
                self.optional = True
        self.repo_type = "dataset" if self.repo.startswith("datasets/") else "model"
        self.repo_id = self.repo.split("/", 1)[1] if self.repo_type == "dataset" else self.repo
        self.folder = repo_folder(self.repo)

    def selective(self):
        return bool(self.files or self.includes or self.excludes)

    def allow_patterns(self):
        """The huggingface_hub allow_patterns that select what this line selects (file: names are
        patterns without wildcards)."""
        return self.files + self.includes if self.files or self.includes else None


def parse_manifest(text):
    entries = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            entries.append(Entry(line))
    return entries


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.tmp = tmp
        self.hubsim = hubsim
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.warm = Warm(hfwarmd, tmp)
        self.cache = os.path.join(tmp, "cache")

    def sim(self):
        return Simulator(self.hubsim, self.fixtures, workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    @staticmethod
    def commit(sim, repo, revision="main"):
        r = sim.get(f"{api_path(repo)}/revision/{urllib.parse.quote(revision, safe='')}")
        equal(r.status, 200, f"revision listing of {repo}@{revision}")
        return r.json()["sha"]

    @staticmethod
    def listing(sim, repo, commit):
        """Path -> size of every file of `repo` at `commit`, from the simulator's tree listing."""
        r = sim.get(f"{api_path(repo)}/tree/{commit}?recursive=true")
        equal(r.status, 200, f"tree listing of {repo}@{commit}")
        return {e["path"]: e["size"] for e in r.json() if e["type"] == "file"}

    def warm_cache(self, sim, manifest_text):
        """Warms self.cache (exit 0 expected); returns the entries that have a folder in it."""
        result = self.warm.run(sim, self.warm.manifest(manifest_text), self.cache)
        equal(result.returncode, 0, "exit code of the warm\n" + describe(result))
        return self.entries(sim, manifest_text)

    def entries(self, sim, manifest_text):
        """The manifest's entries with a folder in the cache, each with .commit, .all_files and
        .selected (path -> size, from the simulator's listing); a `file:` the repo lacks is dropped."""
        ready = []
        for entry in parse_manifest(manifest_text):
            if entry.optional and not os.path.isdir(os.path.join(self.cache, entry.folder)):
                continue
            entry.commit = self.commit(sim, entry.repo, entry.revision)
            files = self.listing(sim, entry.repo, entry.commit)
            entry.files = [p for p in entry.files if p in files]
            chosen = select(files, entry.files, entry.includes, entry.excludes)
            check(chosen, f"{entry.repo}: the manifest selects no file")
            entry.selected = {p: files[p] for p in chosen}
            entry.all_files = files
            ready.append(entry)
        return ready

    def node(self, sim, calls, timeout=60):
        """Runs [function, args] calls of @huggingface/hub in one Node process; returns their results."""
        node = shutil.which("node")
        check(node is not None and os.path.isdir(os.path.join(INTEROP_DIR, "node_modules", "@huggingface", "hub")),
              "needs node and tests/interop/node_modules: run scripts/test, or npm ci in tests/interop")
        # Node reads NODE_EXTRA_CA_CERTS only at start, and this machine may preset it: override it.
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=sim.ca)
        done = subprocess.run([node, JS_CLIENT, INTEROP_DIR, json.dumps(calls)], env=env, capture_output=True,
                              text=True, timeout=timeout)
        check(done.returncode == 0, f"@huggingface/hub failed:\n{done.stderr[-4000:]}")
        # downloadFileToCacheDir prints "Downloading ..." with console.debug: the JSON is the last line.
        return json.loads(done.stdout.strip().splitlines()[-1])

    def demo_manifest(self):
        with open(DEMO_MANIFEST) as f:
            return f.read()

    # ---- @huggingface/hub ----

    def test_js_scan(self):
        """scanCacheDir: every repo, its one revision with refs [main], every file with its blob's size,
        and no warning. Known to the client: it does not descend into snapshot subfolders
        (1_Pooling/config.json), so it reports the top-level files only, and counts their blobs."""
        with self.sim() as sim:
            entries = self.warm_cache(sim, self.demo_manifest())
            [info] = self.node(sim, [["scanCacheDir", self.cache]])
        equal(info["warnings"], [], "scanCacheDir warnings")
        by_name = {r["id"]["name"]: r for r in info["repos"]}
        equal(sorted(by_name), sorted(e.repo_id for e in entries), "repos reported by scanCacheDir")
        total = 0
        for entry in entries:
            repo = by_name[entry.repo_id]
            equal(repo["id"]["type"], entry.repo_type, f"{entry.repo}: type")
            equal(repo["path"], os.path.join(self.cache, entry.folder), f"{entry.repo}: path")
            equal(len(repo["revisions"]), 1, f"{entry.repo}: revisions")
            [revision] = repo["revisions"]
            equal(revision["commitOid"], entry.commit, f"{entry.repo}: commit of the revision")
            equal(revision["refs"], ["main"], f"{entry.repo}: refs of the revision")
            top = {p: s for p, s in entry.selected.items() if "/" not in p}
            snapshot = os.path.join(self.cache, entry.folder, "snapshots", entry.commit)
            got = {os.path.relpath(f["path"], snapshot): f["blob"]["size"] for f in revision["files"]}
            equal(got, top, f"{entry.repo}: files (top level) and their sizes")
            for f in revision["files"]:
                target = os.readlink(f["path"])
                blob = os.path.normpath(os.path.join(snapshot, target))
                equal(f["blob"]["path"], blob, f"{f['path']}: blob path (the link target {target})")
            blobs = {f["blob"]["path"]: f["blob"]["size"] for f in revision["files"]}
            equal(repo["filesCount"], len(blobs), f"{entry.repo}: filesCount (distinct blobs)")
            equal(repo["size"], sum(blobs.values()), f"{entry.repo}: size (distinct blobs)")
            equal(revision["size"], sum(top.values()), f"{entry.repo}: revision size")
            total += repo["size"]
        equal(info["size"], total, "scanCacheDir total size")

    def test_js_offline(self):
        """downloadFileToCacheDir with the commit sha returns the cached pointer and sends nothing.
        snapshotDownload with the sha always asks for the repo info and the tree listing (its code
        calls modelInfo and listFiles before looking at the cache), then finds every file cached: so
        for it the test allows those /api/ requests and nothing else, and checks the cache is unchanged.
        It downloads every file of the repo, so it is called only for lines that select all files."""
        with self.sim() as sim:
            entries = self.warm_cache(sim, self.demo_manifest())
            before = tree_state(self.cache)
            mark = len(sim.log())
            calls = []
            for entry in entries:
                for path in sorted(entry.selected):
                    calls.append(["downloadFileToCacheDir", {"repo": entry.repo, "path": path, "revision": entry.commit,
                                                             "hubUrl": sim.hub, "cacheDir": self.cache}])
            results = self.node(sim, calls)
            after_files = sim.log()[mark:]
            equal([line["target"] for line in after_files], [],
                  "requests of downloadFileToCacheDir(revision=<sha>) on a warm cache")
            expected = [os.path.join(self.cache, repo_folder(c[1]["repo"]), "snapshots", c[1]["revision"],
                                     c[1]["path"]) for c in calls]
            equal(results, expected, "pointer paths returned by downloadFileToCacheDir")

            whole = [e for e in entries if not e.selective()]
            check(whole, "no manifest line selects a whole repo")
            mark = len(sim.log())
            results = self.node(sim, [["snapshotDownload", {"repo": e.repo, "revision": e.commit, "hubUrl": sim.hub,
                                                            "cacheDir": self.cache}] for e in whole])
            log = sim.log()[mark:]
        equal(results, [os.path.join(self.cache, e.folder, "snapshots", e.commit) for e in whole],
              "snapshot folders returned by snapshotDownload(revision=<sha>)")
        equal([line["target"] for line in log if line["class"] != "api"], [],
              "requests other than repo info and tree listings of snapshotDownload(revision=<sha>)")
        check(len(log) <= 2 * len(whole), f"{len(log)} /api/ requests for {len(whole)} snapshotDownload calls")
        equal(tree_state(self.cache), before, "the cache after the JS client read it (paths, link targets, inodes)")

    def test_js_same_cache(self):
        """The JS client's own snapshotDownload into a second cache: same refs, blob names, link
        targets and bytes as hfwarm's. The two trees differ only as KNOWN_ONLY_HFWARM says, and by the
        files a manifest line leaves out (the JS client has no selection: it takes every file)."""
        js_cache = os.path.join(self.tmp, "js-cache")
        with self.sim() as sim:
            entries = self.warm_cache(sim, self.demo_manifest())
            self.node(sim, [["snapshotDownload", {"repo": e.repo, "revision": e.revision, "hubUrl": sim.hub,
                                                  "cacheDir": js_cache}] for e in entries], timeout=80)
        ours, theirs = tree_state(self.cache), tree_state(js_cache)
        # The JS client takes every file of a repo; a manifest line may select some (gguf:, file:).
        not_selected = {f"{e.folder}/snapshots/{e.commit}/{p}" for e in entries for p in set(e.all_files) - set(e.selected)}
        only_ours = sorted(set(ours) - set(theirs))
        only_theirs = sorted(set(theirs) - set(ours))
        unexplained = [p for p in only_ours if not any(fnmatch.fnmatchcase(p, pat) for pat, _ in KNOWN_ONLY_HFWARM)]
        equal(unexplained, [], "paths only in hfwarm's cache that no known difference explains")
        unexplained = [p for p in only_theirs if not explained_js_only(p, not_selected, theirs)]
        equal(unexplained, [], "paths only in the JS client's cache that are not files the manifest left out")
        for path in sorted(set(ours) & set(theirs)):
            equal(ours[path][:2], theirs[path][:2], f"{path}: kind and link target in both caches")
        for entry in entries:
            with open(os.path.join(self.cache, entry.folder, "refs", "main"), "rb") as a, \
                    open(os.path.join(js_cache, entry.folder, "refs", "main"), "rb") as b:
                equal(a.read(), b.read(), f"{entry.repo}: refs/main in both caches")
            for path in entry.selected:
                a = os.path.join(self.cache, entry.folder, "snapshots", entry.commit, path)
                b = os.path.join(js_cache, entry.folder, "snapshots", entry.commit, path)
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    check(fa.read() == fb.read(), f"{entry.repo}/{path}: bytes differ between the caches")
        print(f"{len(set(ours) & set(theirs))} paths alike; {len(only_ours)} only in hfwarm's cache, "
              f"{len(only_theirs)} only in the JS client's, all known differences")

    # ---- huggingface_hub and hf-hub 0.x offline lookups ----

    def lookup_manifest(self, sim):
        """The demo manifest plus a sha-pinned line, a tag and a refs/pr/N branch of one repo, a dataset,
        and an optional line naming a file the repo lacks (hfwarm records it in .no_exist)."""
        pinned = self.commit(sim, REFS_MODEL, "dev")
        return (self.demo_manifest() + f"{REFS_MODEL}@{pinned}\n{REFS_MODEL}@v1.0 include:*.json\n"
                f"{REFS_MODEL} revision:refs/pr/1 exclude:*.json\ndatasets/hubsim/tiny-dataset\n"
                f"{REFS_MODEL} file:README.md file:no-such-file.bin optional\n")

    def test_huggingface_hub_offline(self):
        """try_to_load_from_cache, hf_hub_download and snapshot_download (with the trees/<commit>.json
        completeness check) of huggingface_hub, offline, find every selected file of every line."""
        with self.sim() as sim:
            # The optional line with a missing file fails without failing the run.
            entries = self.warm_cache(sim, self.lookup_manifest(sim))
            main_commit = self.commit(sim, REFS_MODEL)
        for e in entries:
            for path, size in e.selected.items():
                where = f"{e.repo}@{e.revision}/{path}"
                found = lookup.try_to_load_from_cache(self.cache, e.repo_id, path, e.revision, e.repo_type)
                check(isinstance(found, str) and os.path.getsize(found) == size,
                      f"try_to_load_from_cache({where}) = {found!r}")
                found = lookup.hf_hub_download_offline(self.cache, e.repo_id, path, e.revision, e.repo_type)
                equal(os.path.getsize(found), size, f"hf_hub_download offline {where}: size")
                if e.revision != e.commit:
                    found = lookup.hf_hub_download_offline(self.cache, e.repo_id, path, e.commit, e.repo_type)
                    equal(os.path.getsize(found), size, f"hf_hub_download offline {e.repo}@<sha>/{path}: size")
            folder = lookup.snapshot_download_offline(self.cache, e.repo_id, e.revision, e.repo_type,
                                                      e.allow_patterns(), e.excludes or None)
            equal(snapshot_files(folder) >= set(e.selected), True, f"{e.repo}@{e.revision}: snapshot_download folder")
            listing = lookup.load_tree_listing(os.path.join(self.cache, e.folder), e.commit)
            check(listing is not None, f"{e.repo}: trees/{e.commit}.json missing or unreadable")
            equal({p: v["size"] for p, v in listing.items()}, e.all_files, f"{e.repo}: trees/{e.commit}.json files")
            cached = set().union(*(set(o.selected) for o in entries if (o.repo, o.commit) == (e.repo, e.commit)))
            if cached != set(e.all_files):
                # The listing is the whole tree, not the selection: asking for everything offline must
                # say the snapshot is incomplete rather than return part of the repo.
                try:
                    lookup.snapshot_download_offline(self.cache, e.repo_id, e.revision, e.repo_type)
                    raise AssertionError(f"{e.repo}@{e.revision}: snapshot_download of every file offline "
                                         "returned a partial snapshot")
                except lookup.IncompleteSnapshotError:
                    pass
        marker = lookup.try_to_load_from_cache(self.cache, REFS_MODEL, "no-such-file.bin")
        check(marker is lookup.CACHED_NO_EXIST, f"try_to_load_from_cache of a file known absent: {marker!r}")
        marker = lookup.try_to_load_from_cache(self.cache, REFS_MODEL, "no-such-file.bin", main_commit)
        check(marker is lookup.CACHED_NO_EXIST, f"the same by commit sha: {marker!r}")

    def test_hf_hub_offline(self):
        """hf-hub 0.x: refs/<revision> read with no trimming, for branches, tags, refs/pr/N and sha-pinned
        lines (hf-hub needs refs/<sha> there)."""
        with self.sim() as sim:
            entries = self.warm_cache(sim, self.lookup_manifest(sim))
        pinned = [e for e in entries if e.revision == e.commit]
        check(pinned, "no sha-pinned line in the manifest")
        for e in entries:
            ref = os.path.join(self.cache, e.folder, "refs", e.revision)
            check(os.path.isfile(ref), f"{e.repo}@{e.revision}: no refs/{e.revision} (hf-hub 0.x reads only that)")
            with open(ref, "rb") as f:
                equal(f.read(), e.commit.encode(), f"{e.repo}: refs/{e.revision} bytes")
            for path, size in e.selected.items():
                found = lookup.hf_hub_cache_repo_get(self.cache, e.repo_id, path, e.revision, e.repo_type)
                check(found is not None, f"CacheRepo::get({e.repo}@{e.revision}, {path}) missed")
                equal(os.path.getsize(found), size, f"CacheRepo::get({e.repo}@{e.revision}, {path}): size")


def explained_js_only(path, not_selected, theirs):
    """A path only the JS client wrote is explained when it is the snapshot link of a file the manifest
    left out, that link's blob, or a folder holding such links."""
    if path in not_selected:
        return True
    for link in not_selected:
        if link.startswith(path + "/"):
            return True
        kind, target, _ = theirs[link]
        if kind == "link" and os.path.normpath(os.path.join(os.path.dirname(link), target)) == path:
            return True
    return False


def tree_state(root):
    """Relative path -> (kind, link target, inode) of everything under `root`."""
    state = {}
    for base, dirs, names in os.walk(root):
        for name in dirs + names:
            full = os.path.join(base, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if os.path.islink(full):
                state[rel] = ("link", os.readlink(full), st.st_ino)
            elif os.path.isdir(full):
                state[rel] = ("dir", None, st.st_ino)
            else:
                state[rel] = ("file", None, st.st_ino)
    return state


def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "interop-test-")


if __name__ == "__main__":
    sys.exit(main())
