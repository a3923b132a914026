#!/usr/bin/env python3
"""`hfwarmd` as a service against hfwarm-hubsim, driven only through `hfwarmctl` and its socket:
status through a warm, wait, lookup, sync, reload, pause/resume, shutdown and resume of a partial
file, many clients and malformed input, the socket file, sd_notify, socket activation, an absent
daemon, verify/prune and metrics. Request counts come from the simulator's log.

usage: daemon_test.py HFWARMD HFWARMCTL HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (one process per case)
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

HUBSIM_DIR = sys.argv[4] if len(sys.argv) > 4 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import (Failure, check, equal, etag_of, sha256, write_json,  # noqa: E402
                            write_text)
from hubsim_support import Simulator  # noqa: E402
from daemon_support import (MIB, Daemon, big_repo, connect, describe, many_repo, poll, read_line,  # noqa: E402
                            repo_folder, rpc, rpc_line, run_daemon_case, small_repo, write_repo)

HEX40 = re.compile(r"[0-9a-f]{40}")
# The states of a clean warm, in order (docs/protocol.md "States"): a listed entry is queued again
# until a file of it takes a slot. Each warm shows a subsequence of this.
STATE_ORDER = ["queued", "resolving", "queued", "downloading", "ready"]
FIXED_FIELDS = {"repo": str, "type": str, "revision": str, "state": str, "optional": bool, "files_done": int,
                "files_total": int, "bytes_done": int, "bytes_total": int}


def check_entry_shape(entry):
    """The fixed fields of DESIGN.md section 5 with their JSON types."""
    for name, kind in FIXED_FIELDS.items():
        check(name in entry, f"status entry lacks {name!r}: {entry}")
        check(isinstance(entry[name], kind) and not (kind is int and isinstance(entry[name], bool)),
              f"status entry field {name!r} is not {kind.__name__}: {entry}")
    check("commit" in entry and (entry["commit"] is None or HEX40.fullmatch(entry["commit"])),
          f"status entry commit is neither null nor 40 hex: {entry}")
    check("error" in entry and (entry["error"] is None or isinstance(entry["error"], str)),
          f"status entry error is neither null nor a string: {entry}")
    check(entry["state"] in STATE_ORDER + ["failed", "missing", "paused"], f"unknown state: {entry}")
    check(entry["files_done"] <= entry["files_total"] or entry["files_total"] == 0,
          f"files_done above files_total: {entry}")


def cdn_downloads(log, sha256):
    return [line for line in log if line["listener"] == "cdn" and f"/lfs/{sha256}" in line["target"]]


def range_start(header):
    if not header:
        return None
    return int(header.split("=", 1)[1].split("-", 1)[0])


class Case:
    def __init__(self, hfwarmd, hfwarmctl, hubsim, tmp):
        self.hfwarmd = hfwarmd
        self.hfwarmctl = hfwarmctl
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        self.simulator = None
        self.daemons = []
        self.small = write_repo(self.fixtures, "test/small", small_repo())
        self.other = write_repo(self.fixtures, "test/other", small_repo(seed=7))

    def start_sim(self, *args, workdir=None):
        workdir = workdir or tempfile.mkdtemp(prefix="sim-", dir=self.tmp)
        self.simulator = Simulator(self.hubsim, self.fixtures, *args, workdir=workdir).__enter__()
        return self.simulator

    def manifest(self, text, name="manifest.txt"):
        return write_text(os.path.join(self.tmp, "manifests", name), text)

    def config(self, settings, name="hfwarmd.json"):
        return write_json(os.path.join(self.tmp, name), settings)

    def commit(self, repo):
        info = self.simulator.get(f"/api/models/{repo}/revision/main")
        equal(info.status, 200, f"simulator listing of {repo}")
        return info.json()["sha"]

    def cleanup(self):
        for daemon in self.daemons:
            daemon.stop()
        if self.simulator:
            self.simulator.stop()

    def logs(self):
        return "\n".join(d.log() for d in self.daemons)

    # ---- 1. status through a warm; wait ----

    def test_status_and_wait(self):
        big = write_repo(self.fixtures, "test/big", big_repo(6 * MIB))
        self.start_sim("--cdn-rate", "1M")
        d = Daemon(self, self.manifest("test/small\ntest/big\n")).start()

        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    samples.append(d.raw_status())
                except (OSError, ValueError, Failure):
                    pass
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # The shape, from hfwarmctl, while the warm runs.
            status = d.status()
            check(isinstance(status.get("entries"), list) and "totals" in status and "limits" in status,
                  f"status result lacks entries/totals/limits: {list(status)}")
            equal(sorted(e["repo"] for e in status["entries"]), ["test/big", "test/small"], "repos in status")
            for entry in status["entries"]:
                check_entry_shape(entry)
                equal((entry["type"], entry["revision"], entry["optional"]), ("model", "main", False),
                      f"type, revision, optional of {entry['repo']}")

            poll(lambda: d.entry(d.status(), "test/big")["bytes_done"] > 0, 20, "test/big to start downloading")
            started = time.monotonic()
            timed_out = d.ctl("wait", "--timeout", "1")
            took = time.monotonic() - started
            equal(timed_out.returncode, 124, "wait --timeout 1 during a 6 s download\n" + describe(timed_out))
            check(took < 4, f"wait --timeout 1 took {took:.1f} s")
            check("timed out" in timed_out.stderr and "test/big" in timed_out.stderr,
                  f"the timeout message names what is still pending: {timed_out.stderr!r}")

            only_small = d.ctl("wait", "--timeout", "20", "test/small")
            equal(only_small.returncode, 0, "wait test/small while test/big downloads\n" + describe(only_small))
            big_now = d.entry(d.status(), "test/big")
            check(big_now["state"] != "ready" and big_now["bytes_done"] < big_now["bytes_total"],
                  f"test/big was done before `wait test/small` returned, so the check proves nothing: {big_now}")

            everything = d.wait_ready(40)
            check("ready" in everything.stdout, f"wait output: {everything.stdout!r}")
        finally:
            stop.set()
            sampler.join()

        status = d.status()
        for repo, files in (("test/small", self.small), ("test/big", big)):
            entry = d.entry(status, repo)
            check_entry_shape(entry)
            equal(entry["state"], "ready", f"final state of {repo}")
            equal(entry["commit"], self.commit(repo), f"commit of {repo}")
            equal((entry["files_done"], entry["files_total"]), (len(files), len(files)), f"files of {repo}")
            total = sum(len(b) for b in files.values())
            equal((entry["bytes_done"], entry["bytes_total"]), (total, total), f"bytes of {repo}")
            equal(entry["error"], None, f"error of {repo}")
        equal(status["totals"]["ready"], 2, "totals.ready")

        # Every sample has the fixed shape; states only move forward through a warm.
        check(len(samples) > 20, f"only {len(samples)} status samples")
        seen = {"test/small": [], "test/big": []}
        for sample in samples:
            for entry in sample["entries"]:
                check_entry_shape(entry)
                states = seen[entry["repo"]]
                if not states or states[-1] != entry["state"]:
                    states.append(entry["state"])
        for repo, states in seen.items():
            check(all(s in STATE_ORDER for s in states), f"{repo}: unexpected states during a clean warm: {states}")
            order = iter(STATE_ORDER)
            check(all(s in order for s in states), f"{repo}: states out of order: {states}")
            equal(states[-1], "ready", f"{repo}: last state")
        check("downloading" in seen["test/big"], f"test/big never showed downloading: {seen['test/big']}")
        table = d.ctl("status")
        equal(table.returncode, 0, "hfwarmctl status (table)\n" + describe(table))
        check("test/big" in table.stdout and "ready" in table.stdout, f"status table:\n{table.stdout}")

        # A required entry that fails makes wait (and status) exit 1, naming the entry.
        failing = Daemon(self, self.manifest("test/small file:config.json file:missing.bin\n", "failing.txt"),
                         cache=os.path.join(self.tmp, "cache-failing"), name="failing").start()
        result = failing.ctl("wait", "--timeout", "30")
        equal(result.returncode, 1, "wait on a failed required entry\n" + describe(result))
        check("test/small" in result.stderr and "missing.bin" in result.stderr,
              f"wait names the failed entry and file: {result.stderr!r}")
        entry = failing.entry(failing.status(), "test/small")
        equal(entry["state"], "failed", "state of the entry with a missing file")
        check(entry["error"] and "missing.bin" in entry["error"], f"error of the failed entry: {entry}")
        equal(failing.ctl("status").returncode, 1, "status exit code with a failed required entry")

    # ---- 2. lookup ----

    def test_lookup(self):
        sim = self.start_sim()
        d = Daemon(self, self.manifest("test/small\ntest/other file:config.json file:missing.bin optional\n")).start()
        d.wait_ready(30)
        # Only an optional line names the absent file: the entry is ready and notes it.
        other = poll(lambda: (lambda e: e if e["state"] == "ready" and e["notes"] else None)(
            d.entry(d.status(), "test/other")), 20, "test/other ready with a note")
        check("missing.bin does not exist" in other["notes"][0], f"the note of test/other: {other['notes']}")
        commit = self.commit("test/small")
        other_commit = self.commit("test/other")
        requests = len(self.simulator.log())

        for path, data in self.small.items():
            result = d.ctl("lookup", "test/small", path)
            equal(result.returncode, 0, f"lookup of cached {path}\n" + describe(result))
            found = result.stdout.strip()
            check(os.path.isabs(found) and os.path.isfile(found), f"lookup printed {found!r}, not a file")
            equal(found, os.path.join(d.cache, repo_folder("test/small"), "snapshots", commit, path),
                  f"path of {path}")
            with open(found, "rb") as f:
                check(f.read() == data, f"{found} does not hold the bytes of {path}")
        as_json = json.loads(d.ctl("--json", "lookup", "test/small", "sub/vocab.txt").stdout)
        equal(as_json["state"], "cached", "--json lookup state of a cached file")
        check(os.path.isfile(as_json["path"]), f"--json lookup path: {as_json}")
        pinned = d.ctl("lookup", "test/small", "config.json", "--revision", commit)
        equal(pinned.returncode, 0, "lookup at the commit\n" + describe(pinned))

        pinned_absent = d.ctl("--json", "lookup", "test/other", "missing.bin", "--revision", other_commit)
        equal(json.loads(pinned_absent.stdout)["state"], "absent", "lookup of the absent file at its commit")
        # Without --revision the answer needs refs/main, which huggingface_hub writes from the 404's
        # X-Repo-Commit before it records .no_exist; an entry with a missing file has it too.
        check(os.path.isfile(os.path.join(d.cache, repo_folder("test/other"), "refs", "main")),
              "no refs/main for test/other, whose listing succeeded and whose missing file is in .no_exist")
        absent = d.ctl("lookup", "test/other", "missing.bin")
        equal(absent.returncode, 1, "lookup of a file recorded absent\n" + describe(absent))
        check(absent.stdout.startswith("absent:"), f"lookup output of an absent file: {absent.stdout!r}")
        absent_json = json.loads(d.ctl("--json", "lookup", "test/other", "missing.bin").stdout)
        equal(absent_json["state"], "absent", "--json lookup state of an absent file")
        check(not absent_json.get("path"), f"an absent file has no path: {absent_json}")

        for repo, path in (("test/small", "not-there.bin"), ("test/other", "weights.bin"), ("nobody/nothing", "x")):
            unknown = d.ctl("lookup", repo, path)
            equal(unknown.returncode, 1, f"lookup of unknown {repo} {path}\n" + describe(unknown))
            check(unknown.stdout.startswith("unknown:"), f"lookup output of an unknown file: {unknown.stdout!r}")
            unknown_json = json.loads(d.ctl("--json", "lookup", repo, path).stdout)
            equal(unknown_json["state"], "unknown", f"--json lookup state of {repo} {path}")

        equal(len(sim.log()), requests, "requests to the Hub caused by lookups")

    # ---- 3. sync picks up a new commit ----

    def test_sync_new_commit(self):
        sim = self.start_sim()
        hub_port = sim.hub.rsplit(":", 1)[1]
        cdn_port = sim.cdn.rsplit(":", 1)[1]
        d = Daemon(self, self.manifest("test/small\n")).start()
        d.wait_ready(30)
        old = self.commit("test/small")
        equal(d.ref("test/small"), old, "refs/main after the first warm")

        # Nothing changed: a check is one API request and no download.
        before = len(self.simulator.log())
        equal(d.ctl("sync", "test/small").returncode, 0, "hfwarmctl sync test/small")
        poll(lambda: len(sim.log()) > before, 10, "the sync's request")
        time.sleep(1.5)
        classes = [line["class"] for line in sim.log()[before:]]
        equal(classes, ["api"], "requests of a sync when nothing changed")

        # The simulator indexes its fixtures once at start: publishing a commit is a restart on the
        # same ports (its listeners reuse the address) with the same TLS folder.
        workdir = sim.dir
        sim.stop()
        changed = dict(self.small, **{"config.json": b'{"model_type": "small", "revision": 2}\n'})
        write_repo(self.fixtures, "test/small", changed)
        os.remove(sim.ready_file)
        sim = self.start_sim("--port", hub_port, "--cdn-port", cdn_port, workdir=workdir)
        new = self.commit("test/small")
        check(new != old, "the simulator did not publish a new commit after the fixture change")
        equal(d.entry(d.status(), "test/small")["commit"], old, "commit before sync (refresh is hours away)")

        before = len(self.simulator.log())
        result = d.ctl("sync")
        equal(result.returncode, 0, "hfwarmctl sync\n" + describe(result))
        poll(lambda: (lambda e: e["commit"] == new and e["state"] == "ready")(d.entry(d.status(), "test/small")),
             30, "the entry to reach the new commit")
        equal(d.ref("test/small"), new, "refs/main after sync")
        snapshot = os.path.join(d.cache, repo_folder("test/small"), "snapshots", new)
        for path, data in changed.items():
            with open(os.path.join(snapshot, path), "rb") as f:
                check(f.read() == data, f"snapshots/{new}/{path} differs from the published bytes")
        found = d.ctl("lookup", "test/small", "config.json").stdout.strip()
        equal(found, os.path.join(snapshot, "config.json"), "lookup after sync")
        log = sim.log()[before:]
        check(any(line["class"] == "api" for line in log), "sync sent no API request")
        fetched = [line["target"] for line in log if line["status"] in (200, 206) and
                   (line["listener"] == "cdn" or "/resolve/" in line["target"])]
        check(fetched and all("config.json" in target for target in fetched),
              f"sync downloaded more than the changed file: {fetched}")

        result = d.ctl("sync", "nobody/nothing")
        equal(result.returncode, 1, "sync of a repo not in the manifests\n" + describe(result))
        check("nobody/nothing" in result.stderr, f"sync error message: {result.stderr!r}")

    # ---- 4. reload ----

    def test_reload(self):
        self.start_sim()
        manifest = self.manifest("test/small file:config.json\n")
        config = self.config({"limits": {"reserve": 0.1}})
        d = Daemon(self, manifest, extra=["--config", config]).start()
        d.wait_ready(30)

        def repos():
            return sorted((e["repo"], e["files_total"]) for e in d.status()["entries"])

        # An editor that saves by writing a new file and renaming it over the old one.
        tmp = manifest + ".tmp"
        with open(tmp, "w") as f:
            f.write("test/small file:config.json\ntest/other\n")
        os.replace(tmp, manifest)
        poll(lambda: [r for r, _ in repos()] == ["test/other", "test/small"], 10, "reload after a rename")
        d.wait_ready(30)
        equal(d.entry(d.status(), "test/other")["files_total"], len(self.other), "files of the added entry")

        # In place: truncate and write the same file.
        with open(manifest, "w") as f:
            f.write("test/small file:config.json file:tokenizer.json\n")
        poll(lambda: repos() == [("test/small", 2)], 10, "reload after an in-place edit")
        d.wait_ready(30)
        check(os.path.isdir(os.path.join(d.cache, repo_folder("test/other"), "snapshots")),
              "the files of a removed entry must stay (prune is explicit)")

        # A bad manifest keeps the last good one and shows its errors.
        with open(manifest, "w") as f:
            f.write("test/small file:config.json bogus:option\n")
        status = poll(lambda: (lambda s: s if s.get("manifest_errors") else None)(d.status()), 10,
                      "manifest_errors in status")
        check(any("bogus" in e for e in status["manifest_errors"]), f"manifest errors: {status['manifest_errors']}")
        equal(repos(), [("test/small", 2)], "entries while the manifest is bad")
        table = d.ctl("status")
        check("manifest error" in table.stdout, f"status table shows the manifest error:\n{table.stdout}")
        result = d.ctl("reload")
        equal(result.returncode, 1, "hfwarmctl reload of a bad manifest\n" + describe(result))
        check("bogus" in result.stderr, f"reload names the error: {result.stderr!r}")

        # SIGHUP reloads too; a fixed manifest clears the errors.
        with open(manifest, "w") as f:
            f.write("test/small\n")
        poll(lambda: repos() == [("test/small", len(self.small))], 10, "reload after fixing the manifest")
        equal(d.status()["manifest_errors"], [], "manifest errors after the fix")
        d.process.send_signal(signal.SIGHUP)
        poll(lambda: 'reason="SIGHUP"' in d.log(100000), 10, "the daemon's log of the SIGHUP reload")
        check(d.process.poll() is None, "hfwarmd exited on SIGHUP")
        result = d.ctl("reload")
        equal(result.returncode, 0, "hfwarmctl reload\n" + describe(result))
        d.wait_ready(30)

        # The reserve (limits.reserve) is shown in status and metrics, and a reload changes it.
        def resolvers(status):
            return next(c for c in status["limits"]["classes"] if c["class"] == "resolvers")

        status = d.status()
        equal(status["limits"]["reserve"], 0.1, "limits.reserve in status")
        equal((resolvers(status)["rule"], resolvers(status)["quota"], resolvers(status)["reserved"]),
              ("window", 3000, 300), "the resolver class's rule, announced quota and reserved requests")
        self.config({"limits": {"reserve": 0.3}})
        result = d.ctl("reload")
        equal(result.returncode, 0, "hfwarmctl reload of a new reserve\n" + describe(result))
        status = d.status()
        equal(status["limits"]["reserve"], 0.3, "limits.reserve in status after the reload")
        equal(resolvers(status)["reserved"], 900, "reserved resolver requests after the reload")
        metrics = d.ctl("metrics").stdout
        check("hfwarm_ratelimit_reserve_ratio 0.3\n" in metrics, f"the reserve in metrics:\n{metrics}")
        check("hfwarm_ratelimit_cache_hits_total{" in metrics, f"cache hits in metrics:\n{metrics}")

    def test_merged_lines_status(self):
        """Issue 11: two lines of one repo fetch the union; status notes an optional line's absent
        file, and wait and status name the required line whose file is absent."""
        self.start_sim()
        manifest = self.manifest("test/small\ntest/small file:config.json file:absent.bin optional\n"
                                 "test/other file:nope.bin\n")
        d = Daemon(self, manifest).start()
        result = d.ctl("wait", "--timeout", "30")
        equal(result.returncode, 1, "hfwarmctl wait with a required absent file\n" + describe(result))
        check(f"test/other failed: {manifest}:3: nope.bin does not exist" in result.stderr,
              f"wait names the failing line: {result.stderr!r}")
        # wait ends on test/other's failure, which may come while test/small still downloads.
        d.wait_ready(30, "test/small")
        status = d.status()
        small = d.entry(status, "test/small")
        equal((small["state"], small["files_total"]), ("ready", len(self.small)), "test/small: every file")
        equal(len(small["notes"]), 1, f"notes of test/small: {small}")
        check(small["notes"][0].startswith(f"{manifest}:2 (optional): absent.bin does not exist"),
              f"the note names the optional line: {small['notes']}")
        table = d.ctl("status")
        equal(table.returncode, 1, "hfwarmctl status with a failed required entry\n" + describe(table))
        check(f"note: test/small: {manifest}:2 (optional): absent.bin" in table.stdout,
              f"the status table shows the note:\n{table.stdout}")
        check(os.path.isfile(os.path.join(d.cache, repo_folder("test/small"), ".no_exist", small["commit"],
                                          "absent.bin")), "no .no_exist marker for absent.bin")

    def test_reload_mid_warm(self):
        """Issue 11: entries added at the top, removed and reordered while two warm. Every entry
        left is listed again on schedule (an entry that was warming used to keep a schedule of
        "never"); the removed one stops, is never listed again, and keeps its partial file."""
        write_repo(self.fixtures, "test/big", big_repo(6 * MIB))
        gone = write_repo(self.fixtures, "test/gone", big_repo(6 * MIB, seed=9))
        write_repo(self.fixtures, "test/new", small_repo(seed=11))
        self.start_sim("--cdn-rate", "1M")
        config = self.config({"refresh_interval": 2})
        manifest = self.manifest("test/big\ntest/gone\ntest/small\ntest/other\n")
        d = Daemon(self, manifest, extra=["--config", config]).start()

        def downloading(status, repo):
            entry = d.entry(status, repo)
            return entry["state"] == "downloading" and entry["bytes_done"] > 0

        def warming(status):
            return (downloading(status, "test/big") and downloading(status, "test/gone") and
                    all(d.entry(status, r)["state"] == "ready" for r in ("test/small", "test/other")))
        # Only the two large entries are warming when the manifest changes.
        poll(lambda: warming(d.raw_status()), 20, "test/big and test/gone downloading, the others ready")
        with open(manifest, "w") as f:
            f.write("test/new\ntest/small\ntest/other\ntest/big\n")
        remaining = ["test/new", "test/small", "test/other", "test/big"]
        poll(lambda: [e["repo"] for e in d.raw_status()["entries"]] == remaining, 10, "the reloaded entries")

        def listings():
            counts = {}
            for line in self.simulator.log():
                target = line["target"].split("?")[0]
                if line["class"] == "api" and "/revision/" in target:
                    repo = target[len("/api/models/"):].split("/revision/")[0]
                    counts[repo] = counts.get(repo, 0) + 1
            return counts

        # The first listing and two refreshes 2 s apart each, for every entry left.
        counts = poll(lambda: (lambda c: c if all(c.get(r, 0) >= 3 for r in remaining) else None)(listings()),
                      40, "three listings of every remaining entry", interval=0.5)
        equal(counts.get("test/gone"), 1, f"listings of the removed entry (all listings: {counts})")
        folder = os.path.join(d.cache, repo_folder("test/gone"))
        blobs = os.listdir(os.path.join(folder, "blobs"))
        equal(sorted(blobs), sorted([etag_of(gone["config.json"]), etag_of(gone["weights.bin"]) + ".incomplete"]),
              "blobs of the removed entry: its config and its partial weights")
        check(not os.path.exists(os.path.join(folder, "refs", "main")), "the removed entry wrote refs/main")
        d.wait_ready(30, *remaining)
        gone_wait = d.ctl("wait", "--timeout", "5", "test/gone")
        equal(gone_wait.returncode, 1, "hfwarmctl wait for the removed entry\n" + describe(gone_wait))
        check("not in hfwarmd's manifests" in gone_wait.stderr, f"wait names the removed entry: {gone_wait.stderr}")

    # ---- 5. pause / resume ----

    def test_pause_resume(self):
        files = write_repo(self.fixtures, "test/many", many_repo(80))
        # Quotas off so the simulator's RateLimit headers cannot re-seed the buckets set here.
        sim = self.start_sim("--api-quota", "0", "--resolver-quota", "0")
        config = self.config({"limits": {"resolvers": {"rate": 8, "burst": 1}}})
        d = Daemon(self, self.manifest("test/many\n"), extra=["--config", config]).start()
        poll(lambda: d.entry(d.status(), "test/many")["files_done"] >= 5, 20, "a few files of test/many")
        result = d.ctl("pause")
        equal(result.returncode, 0, "hfwarmctl pause\n" + describe(result))
        time.sleep(1.5)  # requests already past the gate finish
        before = len(sim.log())
        entry_before = d.entry(d.status(), "test/many")
        time.sleep(2.5)
        status = d.status()
        entry = d.entry(status, "test/many")
        equal(len(sim.log()), before, "requests that reached the simulator while paused")
        equal(entry["files_done"], entry_before["files_done"], "files done while paused")
        check(entry["files_done"] < entry["files_total"], f"nothing left to do when paused: {entry}")
        equal(entry["state"], "paused", "state while paused")
        equal(status.get("paused"), True, "status.paused")
        check("paused" in d.ctl("status").stdout, "the status table does not say paused")
        check(d.ctl("wait", "--timeout", "1").returncode == 124, "wait while paused must time out")

        result = d.ctl("resume")
        equal(result.returncode, 0, "hfwarmctl resume\n" + describe(result))
        d.wait_ready(40)
        entry = d.entry(d.status(), "test/many")
        equal((entry["state"], entry["files_done"]), ("ready", len(files)), "after resume")
        check(len(sim.log()) > before, "no request after resume")

    # ---- 6. shutdown mid-download, restart resumes ----

    def test_shutdown_and_resume(self):
        big = write_repo(self.fixtures, "test/big", big_repo(8 * MIB))
        sim = self.start_sim("--cdn-rate", "1M")
        # One stream, so that the partial file grows with the bytes received and each run resumes
        # where the last stopped (a parallel download's resume is crash_kill9's and
        # engine_segmented_pieces' to prove).
        config = self.config({"segment_min_size": "64M"})
        d = Daemon(self, self.manifest("test/big\n"), extra=["--config", config]).start()
        sha = etag_of(big["weights.bin"])
        partial = d.blob("test/big", big["weights.bin"]) + ".incomplete"

        def downloaded(n):
            return poll(lambda: d.entry(d.status(), "test/big")["bytes_done"] >= n, 20, f"{n} bytes of test/big")

        downloaded(MIB)
        result = d.ctl("shutdown")
        equal(result.returncode, 0, "hfwarmctl shutdown\n" + describe(result))
        check(d.exited_within(5), "hfwarmd still runs 5 s after the shutdown method")
        equal(d.process.returncode, 0, "exit code after the shutdown method")
        check(not os.path.exists(d.socket), "the socket file outlives the daemon")
        check(os.path.isfile(partial) and os.path.getsize(partial) > 0, f"no partial file {partial} kept")
        check(d.log().rstrip().endswith("info daemon: stopped"), "no 'stopped' line after the teardown\n" + d.log())
        first_partial = os.path.getsize(partial)

        d.start()
        downloaded(first_partial + MIB)
        stopped = time.monotonic()
        d.process.send_signal(signal.SIGTERM)
        check(d.exited_within(5), "hfwarmd still runs 5 s after SIGTERM")
        took = time.monotonic() - stopped
        equal(d.process.returncode, 0, "exit code after SIGTERM")
        check(d.log().rstrip().endswith("info daemon: stopped"), "no 'stopped' line after SIGTERM\n" + d.log())
        check(os.path.getsize(partial) > first_partial, "the second run added nothing to the partial file")

        d.start()
        d.wait_ready(30)
        blob = d.blob("test/big", big["weights.bin"])
        with open(blob, "rb") as f:
            equal(sha256(f.read()), sha, "sha256 of the resumed blob")
        check(not os.path.exists(partial), "the .incomplete file stays after the download finished")
        starts = [range_start(line["range"]) for line in cdn_downloads(sim.log(), sha) if line["method"] == "GET"]
        resumed = [s for s in starts if s]
        check(len(resumed) >= 2, f"expected two resumed (Range > 0) downloads, got starts {starts}")
        check(resumed == sorted(resumed), f"resume offsets went backwards: {starts}")
        fetched = sum(line["bytes"] for line in cdn_downloads(sim.log(), sha) if line["method"] == "GET")
        check(fetched < len(big["weights.bin"]) + MIB,
              f"{fetched} bytes fetched for an {len(big['weights.bin'])}-byte file: the resume restarted")
        print(f"SIGTERM exit took {took:.2f} s; range starts {starts}")

    # ---- 7. many clients and malformed input ----

    def test_clients_and_malformed_input(self):
        self.start_sim()
        d = Daemon(self, self.manifest("test/small\n")).start()  # the default client limit is 256
        d.wait_ready(30)

        steady_errors = []
        steady_answers = [0]
        stop = threading.Event()

        def steady():
            try:
                with connect(d.socket) as sock:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        reply = rpc_line(sock, json.dumps({"jsonrpc": "2.0", "id": n, "method": "status"}).encode()
                                         + b"\n")
                        if reply.get("id") != n or "result" not in reply:
                            steady_errors.append(reply)
                        steady_answers[0] += 1
                        time.sleep(0.02)
            except Exception as e:  # noqa: BLE001 - reported below
                steady_errors.append(repr(e))
        steady_thread = threading.Thread(target=steady, daemon=True)
        steady_thread.start()

        count = 200
        barrier = threading.Barrier(count)
        replies = [None] * count

        def client(i):
            try:
                with connect(d.socket, timeout=30) as sock:
                    barrier.wait(timeout=30)
                    replies[i] = rpc_line(sock, json.dumps({"jsonrpc": "2.0", "id": i, "method": "status"}).encode()
                                          + b"\n", timeout=30)
            except Exception as e:  # noqa: BLE001 - reported below
                replies[i] = repr(e)
        clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]

        malformed = {}

        def bad(name, payload, close_early=False):
            try:
                with connect(d.socket) as sock:
                    if close_early:
                        sock.sendall(payload)
                        malformed[name] = "closed"
                        return
                    sender = threading.Thread(target=lambda: _send_ignoring_close(sock, payload), daemon=True)
                    sender.start()
                    malformed[name] = json.loads(read_line(sock))
                    sender.join(10)
            except Exception as e:  # noqa: BLE001 - reported below
                malformed[name] = repr(e)
        bad_cases = [
            ("bad json", b'{"jsonrpc": "2.0", "id": 7, "method": \n'),
            ("long line", b'{"jsonrpc": "2.0", "id": 8, "method": "status", "params": {"x": "' + b"x" * MIB + b'"}}\n'),
            ("unknown method", b'{"jsonrpc": "2.0", "id": 9, "method": "explode"}\n'),
            ("no method", b'{"jsonrpc": "2.0", "id": 10}\n'),
        ]
        workers = clients + [threading.Thread(target=bad, args=c, daemon=True) for c in bad_cases]
        workers.append(threading.Thread(target=bad, args=("half line", b'{"jsonrpc": "2.0", "id": 11, "meth', True),
                                        daemon=True))
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        time.sleep(0.5)
        stop.set()
        steady_thread.join(10)

        failed = [(i, r) for i, r in enumerate(replies)
                  if not isinstance(r, dict) or r.get("id") != i or "entries" not in r.get("result", {})]
        check(not failed, f"{len(failed)} of {count} concurrent status clients got no good answer, e.g. {failed[:3]}")
        check(not steady_errors, f"the well-formed client got errors: {steady_errors[:3]}")
        check(steady_answers[0] >= 5, f"the well-formed client got only {steady_answers[0]} answers")

        def error_code(name):
            reply = malformed[name]
            check(isinstance(reply, dict) and reply.get("jsonrpc") == "2.0" and "error" in reply,
                  f"{name}: not a JSON-RPC error reply: {reply!r}")
            check(isinstance(reply["error"].get("message"), str) and reply["error"]["message"],
                  f"{name}: error without a message: {reply}")
            return reply["error"]["code"]
        equal(error_code("bad json"), -32700, "code for bad JSON")
        equal(malformed["bad json"]["id"], None, "id of the parse error reply")
        equal(error_code("long line"), -32001, "code for a 1 MiB line")
        equal(error_code("unknown method"), -32601, "code for an unknown method")
        equal(malformed["unknown method"]["id"], 9, "id of the unknown-method reply")
        check("explode" in malformed["unknown method"]["error"]["message"], "the message names the unknown method")
        equal(error_code("no method"), -32600, "code for a request without a method")
        equal(malformed["half line"], "closed", "half a line then close")

        check(d.process.poll() is None, "hfwarmd exited after malformed input\n" + d.log())
        result = d.ctl("status")
        equal(result.returncode, 0, "status after the storm\n" + describe(result))

        # Over the client limit, the rest get a JSON-RPC error at once, not a hang.
        limit = 64
        limited = Daemon(self, self.manifest("test/small\n"), cache=d.cache, name="limited",
                         extra=["--config", self.config({"max_clients": limit})]).start()
        barrier = threading.Barrier(count)
        replies = [None] * count
        sockets = []

        def hold(i):
            try:
                sock = connect(limited.socket, timeout=20)
                sockets.append(sock)
                barrier.wait(timeout=30)
                # A refused client may find the connection closed already: its reply is still there.
                _send_ignoring_close(sock, json.dumps({"jsonrpc": "2.0", "id": i, "method": "status"}).encode()
                                     + b"\n")
                replies[i] = json.loads(read_line(sock))
            except Exception as e:  # noqa: BLE001 - reported below
                replies[i] = repr(e)
        holders = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(count)]
        for w in holders:
            w.start()
        for w in holders:
            w.join(60)
        for sock in sockets:
            sock.close()
        answered = sum(1 for r in replies if isinstance(r, dict) and "result" in r)
        refused = sum(1 for r in replies if isinstance(r, dict) and r.get("error", {}).get("code") == -32000)
        others = [r for r in replies if not (isinstance(r, dict) and ("result" in r or
                                                                      r.get("error", {}).get("code") == -32000))]
        check(not others, f"clients over the limit got neither an answer nor -32000, e.g. {others[:3]}")
        # A probe connection of the start-up check may still count for a moment.
        check(limit - 2 <= answered <= limit and answered + refused == count,
              f"{answered} answered, {refused} refused with a limit of {limit}")
        equal(limited.ctl("status").returncode, 0, "status once the crowd left")

    # ---- subscribe, version, idle clients ----

    def test_subscribe_and_idle(self):
        big = write_repo(self.fixtures, "test/big", big_repo(3 * MIB))
        self.start_sim("--cdn-rate", "1M")
        config = self.config({"client_idle_timeout": 1})
        d = Daemon(self, self.manifest("test/big\n"), extra=["--config", config]).start()
        idle = connect(d.socket)
        with connect(d.socket) as sock:
            reply = rpc_line(sock, b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
            equal(reply.get("result"), {"subscribed": True}, "subscribe reply")
            sock.settimeout(20)
            stream = sock.makefile("rb")
            notifications = []
            started = time.monotonic()
            while True:
                line = stream.readline()
                check(line, f"the subscription ended after {len(notifications)} notifications")
                message = json.loads(line)
                check(message.get("jsonrpc") == "2.0" and "id" not in message and
                      message.get("method") in ("entry", "totals"), f"not a known notification: {message}")
                notifications.append(message)
                if message["method"] == "entry":
                    check_entry_shape(message["params"])
                ready = [n for n in notifications if n["method"] == "entry" and n["params"]["state"] == "ready"]
                # Stay subscribed past the idle timeout: a subscriber is never closed for idling.
                if ready and time.monotonic() - started > 2.5 and notifications[-1]["method"] == "totals":
                    break
            progress = [n["params"]["bytes_done"] for n in notifications
                        if n["method"] == "entry" and n["params"]["state"] == "downloading"]
            check(progress, "no progress notification while test/big downloaded")
            equal(ready[-1]["params"]["bytes_done"], len(big["config.json"]) + len(big["weights.bin"]),
                  "bytes_done of the ready notification")
            totals = notifications[-1]["params"]
            equal((totals.get("entries"), totals.get("ready")), (1, 1), "entries and ready of the last totals")

        idle.settimeout(5)
        try:
            closed = idle.recv(1) == b""
        except OSError:
            closed = True
        check(closed, "an idle client was not closed after client_idle_timeout (1 s)")
        idle.close()

        version = rpc(d.socket, "version")["result"]
        equal(version.get("protocol"), 1, "protocol of version")
        check(re.fullmatch(r"\d+\.\d+\.\d+", str(version.get("version"))), f"version result: {version}")
        result = d.ctl("version")
        equal(result.returncode, 0, "hfwarmctl version\n" + describe(result))
        check(f"hfwarmd {version['version']} (protocol 1)" in result.stdout, f"hfwarmctl version: {result.stdout!r}")

    # ---- 8. the socket file ----

    def test_socket_file(self):
        self.start_sim()
        manifest = self.manifest("test/small\n")
        d = Daemon(self, manifest).start()
        mode = os.stat(d.socket).st_mode
        check(stat.S_ISSOCK(mode), f"{d.socket} is not a socket")
        equal(oct(stat.S_IMODE(mode)), oct(0o660), "mode of the socket file")

        second = Daemon(self, manifest, cache=d.cache, socket_path=d.socket, name="second").start(wait=False)
        check(second.exited_within(10), "a second daemon on a live socket keeps running")
        equal(second.process.returncode, 2, "exit code of a second daemon on a live socket\n" + second.log())
        message = second.log()
        check("another hfwarmd is listening" in message and d.socket in message,
              f"the second daemon's message must say another daemon listens on {d.socket}:\n{message}")
        equal(d.ctl("status").returncode, 0, "the first daemon answers after the second one gave up")

        d.process.kill()
        d.process.wait()
        check(os.path.exists(d.socket), "SIGKILL left no socket file: the stale-file case is not exercised")
        third = Daemon(self, manifest, cache=d.cache, socket_path=d.socket, name="third").start()
        equal(third.ctl("status").returncode, 0, "a daemon on a stale socket file answers")
        equal(oct(stat.S_IMODE(os.stat(third.socket).st_mode)), oct(0o660), "mode of the replaced socket file")
        third.wait_ready(30)

        # HFWARM_SOCKET names the socket for both programs.
        env_socket = os.path.join(self.tmp, "env", "hfwarmd.sock")
        by_env = Daemon(self, manifest, cache=os.path.join(self.tmp, "cache-env"), socket_path=env_socket,
                        env={"HFWARM_SOCKET": env_socket}, name="by-env", socket_flag=False).start()
        result = subprocess.run([self.hfwarmctl, "status"], capture_output=True, text=True, timeout=30,
                                env=by_env.env)
        check(result.returncode in (0, 1) and "test/small" in result.stdout,
              "hfwarmctl status through HFWARM_SOCKET\n" + describe(result))
        equal(oct(stat.S_IMODE(os.stat(env_socket).st_mode)), oct(0o660), "mode of the HFWARM_SOCKET socket")

        not_socket = os.path.join(self.tmp, "plain.sock")
        with open(not_socket, "w") as f:
            f.write("not a socket\n")
        fourth = Daemon(self, manifest, cache=os.path.join(self.tmp, "cache4"), socket_path=not_socket,
                        name="fourth").start(wait=False)
        check(fourth.exited_within(10), "a daemon whose socket path is a regular file keeps running")
        equal(fourth.process.returncode, 2, "exit code when the socket path is a regular file")
        check("not a socket" in fourth.log(), f"message for a regular file at the socket path:\n{fourth.log()}")
        with open(not_socket) as f:
            equal(f.read(), "not a socket\n", "the regular file at the socket path")

    # ---- 9. sd_notify ----

    def test_sd_notify(self):
        self.start_sim()
        notify_path = os.path.join(self.tmp, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(0.2)
        d = Daemon(self, self.manifest("test/small\n"), env={"NOTIFY_SOCKET": notify_path})
        messages = []
        connected_after_ready = []
        stop = threading.Event()

        def receive():
            while not stop.is_set():
                try:
                    data = notify.recv(4096).decode()
                except socket.timeout:
                    continue
                for line in data.split("\n"):
                    if line:
                        messages.append((time.monotonic(), line))
                        if line == "READY=1":
                            # No retry: the socket must accept at the moment READY=1 arrives.
                            try:
                                reply = rpc(d.socket, "version")
                                connected_after_ready.append(reply.get("result", reply))
                            except OSError as e:
                                connected_after_ready.append(repr(e))
        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        try:
            d.start(wait=False)
            poll(lambda: any(m == "READY=1" for _, m in messages), 15, "READY=1")
            d.wait_ready(30)
            poll(lambda: any(m.startswith("STATUS=1/1 entries ready") for _, m in messages), 5,
                 "a STATUS= line with the entry ready")
            equal(d.ctl("shutdown").returncode, 0, "hfwarmctl shutdown")
            check(d.exited_within(5), "hfwarmd runs on after shutdown")
            poll(lambda: any(m == "STOPPING=1" for _, m in messages), 5, "STOPPING=1")
        finally:
            stop.set()
            receiver.join()
            notify.close()
        lines = [m for _, m in messages]
        check(len(connected_after_ready) == 1 and isinstance(connected_after_ready[0], dict)
              and "version" in connected_after_ready[0],
              f"connecting right after READY=1: {connected_after_ready}")
        check(lines[0] == "READY=1", f"the first notification is not READY=1: {lines[:3]}")
        equal(lines.count("READY=1"), 1, "READY=1 messages")
        equal(lines[-1], "STOPPING=1", "the last notification")
        statuses = [m for m in lines if m.startswith("STATUS=")]
        check(statuses, f"no STATUS= lines: {lines}")
        check(all(re.fullmatch(r"STATUS=\d+/\d+ entries ready, .+ of .+, .+/s", s) for s in statuses),
              f"STATUS= lines: {statuses}")
        check(set(lines) <= set(statuses) | {"READY=1", "STOPPING=1"}, f"unexpected notifications: {lines}")

    # ---- socket activation ----

    def test_socket_activation(self):
        self.start_sim()
        path = os.path.join(self.tmp, "activated.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(16)
        d = Daemon(self, self.manifest("test/small\n"), socket_path=path)
        fd = listener.fileno()
        # LISTEN_PID must be the daemon's own pid: the shell sets it to its own and execs hfwarmd.
        wrapper = ["/bin/sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&{fd}', "sh"]
        d.out = open(d.log_path, "a")
        d.process = subprocess.Popen(wrapper + d.command(), stdout=d.out, stderr=subprocess.STDOUT, env=d.env,
                                     pass_fds=(fd,))
        listener.close()  # only the daemon holds the socket now
        d.wait_listening()
        d.wait_ready(30)
        reply = rpc(path, "version")
        check("result" in reply, f"version over the activated socket: {reply}")
        check('listening on socket passed by systemd' in d.log(100000), "the daemon did not use the passed socket")
        equal(d.ctl("shutdown").returncode, 0, "shutdown over the activated socket")
        check(d.exited_within(5), "hfwarmd runs on after shutdown")

    # ---- 10. no daemon ----

    def test_no_daemon(self):
        path = os.path.join(self.tmp, "nobody.sock")
        d = Daemon(self, self.manifest("test/small\n"), socket_path=path)
        for args in (["status"], ["--json", "status"], ["sync"], ["metrics"], ["lookup", "test/small", "config.json"],
                     ["shutdown"]):
            result = d.ctl(*args)
            equal(result.returncode, 3, f"hfwarmctl {' '.join(args)} without a daemon\n" + describe(result))
            check(path in result.stderr, f"the message names the socket path {path}: {result.stderr!r}")
        started = time.monotonic()
        result = d.ctl("wait", "--timeout", "1")
        equal(result.returncode, 3, "wait --timeout 1 without a daemon\n" + describe(result))
        check(time.monotonic() - started < 5, "wait --timeout 1 without a daemon took too long")
        check(path in result.stderr, f"the wait message names the socket path: {result.stderr!r}")

        # A leftover file at the path is no daemon either.
        with open(path, "w"):
            pass
        result = d.ctl("status")
        equal(result.returncode, 3, "status with a plain file at the socket path\n" + describe(result))

        env_path = os.path.join(self.tmp, "from-env.sock")
        result = subprocess.run([self.hfwarmctl, "status"], capture_output=True, text=True, timeout=30,
                                env=dict(d.env, HFWARM_SOCKET=env_path))
        equal(result.returncode, 3, "status with HFWARM_SOCKET and no daemon\n" + describe(result))
        check(env_path in result.stderr, f"the message names HFWARM_SOCKET's path: {result.stderr!r}")

    # ---- 11. verify and prune ----

    def test_verify_and_prune(self):
        self.start_sim()
        d = Daemon(self, self.manifest("test/small\n")).start()
        d.wait_ready(30)

        blobs = os.path.join(d.cache, repo_folder("test/small"), "blobs")
        stale = os.path.join(blobs, "ab" * 32 + ".incomplete")
        with open(stale, "wb") as f:
            f.write(b"\0" * 4096)
        orphan_data = b"no snapshot points here\n"
        orphan = os.path.join(blobs, etag_of(orphan_data))
        with open(orphan, "wb") as f:
            f.write(orphan_data)

        result = d.ctl("prune")
        equal(result.returncode, 0, "prune dry run\n" + describe(result))
        for path in (stale, orphan):
            check(path in result.stdout, f"prune does not list {path}:\n{result.stdout}")
            check(os.path.exists(path), f"the dry run removed {path}")
        check("would remove 2 items" in result.stdout, f"prune summary: {result.stdout!r}")
        dry = json.loads(d.ctl("--json", "prune").stdout)
        equal((dry["applied"], sorted(i["path"] for i in dry["items"])), (False, sorted([stale, orphan])),
              "prune --json dry run")

        result = d.ctl("prune", "--apply")
        equal(result.returncode, 0, "prune --apply\n" + describe(result))
        check(not os.path.exists(stale) and not os.path.exists(orphan), "prune --apply left the planted files")
        check("removed 2 items" in result.stdout, f"prune --apply summary: {result.stdout!r}")
        for data in self.small.values():
            check(os.path.isfile(d.blob("test/small", data)), "prune --apply removed a blob in use")
        again = json.loads(d.ctl("--json", "prune").stdout)
        equal(again["items"], [], "prune after prune --apply")

        result = d.ctl("verify")
        equal(result.returncode, 0, "verify of a good cache\n" + describe(result))
        check(f"verified {len(self.small)} files" in result.stdout and "0 problems" in result.stdout,
              f"verify output: {result.stdout!r}")
        time.sleep(0.5)
        check(d.process.poll() is None, f"hfwarmd exited with {d.process.returncode} after verify")

        blob = d.blob("test/small", self.small["weights.bin"])
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        result = d.ctl("verify")
        equal(result.returncode, 1, "verify after corrupting a blob\n" + describe(result))
        check("weights.bin" in result.stdout and "test/small" in result.stdout and "1 problem" in result.stdout,
              f"verify names the corrupt file: {result.stdout!r}")
        report = json.loads(d.ctl("--json", "verify").stdout)
        equal([(p["repo"], p["path"]) for p in report["problems"]], [("test/small", "weights.bin")],
              "verify --json problems")

    # ---- 12. metrics ----

    def test_metrics(self):
        sim = self.start_sim()
        d = Daemon(self, self.manifest("test/small\ntest/other file:config.json\n")).start()
        d.wait_ready(30)
        log = sim.log()
        result = d.ctl("metrics")
        equal(result.returncode, 0, "hfwarmctl metrics\n" + describe(result))
        text = result.stdout
        samples = {}
        types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
            elif line and not line.startswith("#"):
                match = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
                check(match, f"not a Prometheus sample line: {line!r}")
                samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        for name in samples:
            family = re.sub(r"\{.*", "", name)
            base = re.sub(r"_(bucket|sum|count)$", "", family)
            check(family in types or base in types, f"sample {name} has no # TYPE line")

        equal(types.get("hfwarm_entries"), "gauge", "type of hfwarm_entries")
        equal(samples.get('hfwarm_entries{state="ready"}'), 2.0, "ready entries")
        equal(samples.get('hfwarm_entries{state="failed"}'), 0.0, "failed entries")
        equal(types.get("hfwarm_bytes_fetched_total"), "counter", "type of the bytes counter")
        wanted_bytes = sum(len(b) for b in self.small.values()) + len(self.other["config.json"])
        equal(samples.get("hfwarm_bytes_fetched_total"), float(wanted_bytes), "bytes fetched")
        equal(samples.get("hfwarm_files_downloaded_total"), float(len(self.small) + 1), "files downloaded")

        host = sim.hub.split("://", 1)[1].rsplit(":", 1)[0]
        for cls in ("api", "resolvers"):
            counted = [v for k, v in samples.items()
                       if k.startswith("hfwarm_ratelimit_requests_total{") and f'class="{cls}"' in k
                       and f'host="{host}' in k]
            check(counted, f"no hfwarm_ratelimit_requests_total for class {cls}:\n{text}")
            logged = sum(1 for line in log if line["class"] == cls)
            equal(sum(counted), float(logged), f"{cls} requests counted vs. the simulator's log")
            check(any(k.startswith("hfwarm_ratelimit_429_total{") and f'class="{cls}"' in k for k in samples),
                  f"no 429 counter for class {cls}")

        equal(types.get("hfwarm_request_duration_seconds"), "histogram", "type of the latency histogram")
        buckets = [(k, v) for k, v in samples.items() if k.startswith("hfwarm_request_duration_seconds_bucket{")]
        check(len(buckets) >= 2 and buckets[-1][0].endswith('le="+Inf"}'), f"histogram buckets: {buckets}")
        values = [v for _, v in buckets]
        check(values == sorted(values), f"histogram buckets are not cumulative: {buckets}")
        count = samples.get("hfwarm_request_duration_seconds_count")
        equal(values[-1], count, "the +Inf bucket equals _count")
        check(count >= len(log), f"{count} requests timed, the simulator logged {len(log)}")
        check(samples.get("hfwarm_request_duration_seconds_sum", 0) > 0, "latency sum")

        as_json = json.loads(d.ctl("--json", "metrics").stdout)
        check(isinstance(as_json.get("text"), str), f"metrics --json: {as_json}")
        json_types = {line.split(" ")[2] for line in as_json["text"].splitlines() if line.startswith("# TYPE ")}
        equal(json_types, set(types), "metric families of metrics --json")


def _send_ignoring_close(sock, payload):
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the daemon may close a connection whose line is over the limit before reading it all


def main():
    return run_daemon_case(Case, sys.argv, "hfwd-")


if __name__ == "__main__":
    sys.exit(main())
