#!/usr/bin/env python3
"""Demand priority: with one file in flight and a throttled CDN, `hfwarmctl wait LAST` and a
`lookup` of a file LAST lacks move LAST's files ahead of the queued files of earlier entries.
Asserted on the order of the CDN requests in the simulator's log, not on timing.

usage: priority_test.py HFWARMD HFWARMCTL HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (one process per case)
"""

import json
import os
import random
import sys
import tempfile

HUBSIM_DIR = sys.argv[4] if len(sys.argv) > 4 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, sha256, write_json, write_text  # noqa: E402
from hubsim_support import Simulator  # noqa: E402
from daemon_support import Daemon, describe, write_repo, run_daemon_case  # noqa: E402

ENTRIES = 6
WEIGHTS = 300 * 1024  # an LFS file: fetched from the CDN, about 1.2 s at the capped rate
CDN_RATE = "256K"
# The file in flight when the promotion arrives finishes first; one more may have started on a
# machine slow to run hfwarmctl. Without promotion, queued files go in manifest order and LAST's
# file comes last (place 5).
MOST_FILES_BEFORE = 2


class Case:
    def __init__(self, hfwarmd, hfwarmctl, hubsim, tmp):
        self.hfwarmd = hfwarmd
        self.hfwarmctl = hfwarmctl
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        self.simulator = None
        self.daemons = []
        self.repos = [f"test/p{i}" for i in range(ENTRIES)]
        self.weights = {}
        for i, repo in enumerate(self.repos):
            data = random.Random(100 + i).randbytes(WEIGHTS)
            write_repo(self.fixtures, repo, {"config.json": b'{"model_type": "p"}\n', "weights.bin": data})
            self.weights[sha256(data)] = repo

    def cleanup(self):
        for daemon in self.daemons:
            daemon.stop()
        if self.simulator:
            self.simulator.stop()

    def logs(self):
        return "\n".join(d.log() for d in self.daemons)

    def start(self):
        """A throttled CDN and a daemon with one file in flight warming the entries in order."""
        self.simulator = Simulator(self.hubsim, self.fixtures, "--cdn-rate", CDN_RATE,
                                   workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp)).__enter__()
        manifest = write_text(os.path.join(self.tmp, "manifest.txt"),
                              "".join(f"{repo} file:weights.bin\n" for repo in self.repos))
        config = write_json(os.path.join(self.tmp, "hfwarmd.json"), {"files_in_flight": 1})
        return Daemon(self, manifest, extra=["--config", config]).start()

    def cdn_order(self):
        """The repos whose weights the CDN served, in the order the requests arrived."""
        order = []
        for line in self.simulator.log():
            if line["listener"] != "cdn" or "/lfs/" not in line["target"]:
                continue
            repo = self.weights.get(line["target"].split("/lfs/", 1)[1].split("?", 1)[0])
            if repo and repo not in order:
                order.append(repo)
        return order

    def check_promoted(self, d, last):
        """Every entry ends ready; `last` was fetched ahead of the earlier entries still queued."""
        d.wait_ready(60)
        order = self.cdn_order()
        equal(sorted(order), sorted(self.repos), "repos fetched from the CDN")
        place = order.index(last)
        check(place <= MOST_FILES_BEFORE,
              f"{last} was fetched in place {place} of {order}; promoted, it should come after at most "
              f"{MOST_FILES_BEFORE} files already started\n{d.log()}")
        # The entries it overtook keep their manifest order.
        after = order[place + 1:]
        equal(after, [repo for repo in self.repos if repo in after], "order of the entries fetched after it")
        return order

    def test_wait(self):
        d = self.start()
        last = self.repos[-1]
        result = d.ctl("wait", "--timeout", "60", last, timeout=75)
        equal(result.returncode, 0, "hfwarmctl wait LAST\n" + describe(result) + "\n" + d.log())
        equal(result.stdout, "1 entry: 1 ready, 0 failed\n", "what wait LAST prints")
        # Ready when wait returned, while the entries it overtook were not all ready yet.
        status = d.status()
        equal(d.entry(status, last)["state"], "ready", f"state of {last} after wait")
        check(any(d.entry(status, r)["state"] != "ready" for r in self.repos[:-1]),
              f"every earlier entry was ready when wait {last} returned: {json.dumps(status['entries'])}")
        self.check_promoted(d, last)

    def test_lookup(self):
        d = self.start()
        last = self.repos[-1]
        result = d.ctl("--json", "lookup", last, "weights.bin")
        check(result.returncode in (0, 1), "hfwarmctl lookup of a file not cached yet\n" + describe(result))
        equal(json.loads(result.stdout)["state"], "unknown", "lookup state of a file not cached yet")
        self.check_promoted(d, last)
        cached = d.ctl("lookup", last, "weights.bin")
        equal(cached.returncode, 0, "lookup once it is cached\n" + describe(cached))


def main():
    return run_daemon_case(Case, sys.argv, "hfwp-")


if __name__ == "__main__":
    sys.exit(main())
