#!/usr/bin/env python3
"""`hfwarmd --once` under the Hub's request quotas and a bandwidth cap, against hfwarm-hubsim: every file
arrives, the simulator's log shows at most one 429 per fixed window, and the run takes as long as the
budget allows (issue 5: files / quota x window, within 15 %; 40 MiB at 4 MiB/s in 10 s +- 10 %).
Issue 12: within an announced fixed window hfwarmd spends what remains less the reserve at once, so a
warm under the anonymous budget runs as fast as without limits, no window sees more than q - reserve
of its requests, and the reserve answers another client on the same address while it warms.

usage: ratelimit_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (meson runs one process per case)
"""

import datetime
import math
import os
import sys
import tempfile
import time

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import Warm, check_repo, describe, fixture_files  # noqa: E402

# A second identity for the test's own look-ups after the run: the simulator counts quotas per token, so
# these requests never touch the anonymous windows hfwarmd used.
TOKEN = "hf_ratelimitCheckToken0123456789"
MIB = 1 << 20


def log_time(line):
    """Seconds since the epoch of a request-log line (`2026-11-26T05:42:58.261Z`)."""
    stamp = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def fixed_windows(lines, window):
    """The simulator's fixed windows rebuilt from its log: a window starts at the first request of the
    class and the next one at the first request after it ended. Returns (start, lines) pairs.
    A line is written when the response is sent, a few ms after the request was counted; the responses
    here are small, so that shift is far below the window length."""
    windows = []
    for line in sorted(lines, key=log_time):
        t = log_time(line)
        if not windows or t >= windows[-1][0] + window:
            windows.append((t, []))
        windows[-1][1].append(line)
    return windows


def refusals_per_window(lines, window):
    return [sum(line["status"] == 429 for line in group) for _, group in fixed_windows(lines, window)]


def requests_per_window(lines, window):
    return [len(group) for _, group in fixed_windows(lines, window)]


def share(quota, reserve=0.1):
    """What hfwarmd may spend of a window: the quota less the reserve, rounded down."""
    return quota - math.floor(quota * reserve + 1e-9)


def wait_for(what, condition, timeout=30):
    """Polls `condition` (which reads the simulator's synced log) until it holds: an event, not a guess
    of how long it takes."""
    deadline = time.monotonic() + timeout
    while not condition():
        check(time.monotonic() < deadline, f"{what}: not seen within {timeout} s")
        time.sleep(0.02)


def within(actual, floor, tolerance, what):
    low, high = (1 - tolerance) * floor, (1 + tolerance) * floor
    check(low <= actual <= high,
          f"{what}: {actual:.2f} s, expected {floor:.2f} s +- {tolerance:.0%} ({low:.2f} .. {high:.2f} s)")


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        self.warm = Warm(hfwarmd, tmp)
        self.cache = os.path.join(tmp, "cache")

    def sim(self, *args):
        return Simulator(self.hubsim, self.fixtures, "--token", TOKEN, *args,
                         workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    def timed_run(self, sim, manifest, *extra):
        started = time.monotonic()
        result = self.warm.run(sim, manifest, self.cache, *extra)
        return result, time.monotonic() - started

    def check_repos(self, sim, selections):
        """Every selected file of every repo is in the cache, hashed and linked as huggingface_hub
        expects (selections: repo -> set of paths, None for every file). The commit comes from the
        resolver's X-Repo-Commit, asked with the check token so it spends none of hfwarmd's budget."""
        for repo, paths in selections.items():
            head = sim.head(f"/{repo}/resolve/main/config.json", {"Authorization": f"Bearer {TOKEN}"})
            equal(head.status, 200, f"status of the check request for the commit of {repo}")
            files = fixture_files(self.fixtures, repo)
            chosen = {p: files[p] for p in (files if paths is None else paths)}
            check_repo(self.cache, repo, head.header("X-Repo-Commit"), chosen)

    @staticmethod
    def anonymous(log, request_class):
        return [line for line in log if line["class"] == request_class and not line["auth"]]

    def test_quota_floor(self):
        generate(self.hubsim, "small-files", self.fixtures)
        repos = [f"small/repo-{i:02d}" for i in range(6)]
        files = sum(len(fixture_files(self.fixtures, repo)) for repo in repos)
        quota, window = 50, 3
        floor = files / quota * window
        # 306 files, 50 per 3 s: 18.4 s. The first window opens at hfwarmd's first resolver request, so
        # a client that spent each window's quota at once would end in the 7th window, at 6 x 3 s = 18 s
        # plus the last 6 requests: the exact floor with window alignment is (ceil(files / quota) - 1) x
        # window + e = 18 s, inside the 15 % of files / quota x window. A multiple of the quota
        # (300 files) would put that aligned floor at 15 s, outside 15 % of 18 s, so the count is not one.
        check(files % quota != 0 and 15 <= floor <= 30, f"{files} files make a floor of {floor:.1f} s")
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            result, elapsed = self.timed_run(sim, self.warm.manifest("".join(r + "\n" for r in repos)))
            equal(result.returncode, 0, f"exit code under a resolver quota of {quota} per {window} s\n"
                  + describe(result))
            log = self.anonymous(sim.log(), "resolvers")
            self.check_repos(sim, {repo: None for repo in repos})
        check(len(log) >= files, f"only {len(log)} resolver requests for {files} files")
        refused = refusals_per_window(log, window)
        sent = requests_per_window(log, window)
        print(f"{files} files in {elapsed:.2f} s, floor {floor:.2f} s, requests per window {sent}, "
              f"429s per window {refused}")
        check(max(refused) <= 1, f"429s per {window} s window (at most one each): {refused}")
        check(max(sent) <= share(quota), f"requests per {window} s window (at most {share(quota)}, the quota "
              f"less the default reserve): {sent}")
        within(elapsed, floor, 0.15, f"time for {files} files at {quota} resolver requests per {window} s")

    def test_bandwidth_cap(self):
        generate(self.hubsim, "large", self.fixtures, "--size", "40M", "--files", "2")
        repo = "large/weights"
        weights = {p: d for p, d in fixture_files(self.fixtures, repo).items() if p != "config.json"}
        equal(sum(len(d) for d in weights.values()), 40 * MIB, "bytes of the weight files")
        with self.sim() as sim:
            # The whole run is timed, listing included: its requests take well under a second on the
            # local simulator, which the log below confirms, so nothing is subtracted.
            result, elapsed = self.timed_run(sim, self.warm.manifest(repo + "\n"), "--bandwidth", "4M")
            equal(result.returncode, 0, "exit code with --bandwidth 4M\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, {repo: None})
        cdn = [line for line in log if line["listener"] == "cdn"]
        check(cdn, "no request reached the CDN")
        equal(sum(line["bytes"] for line in cdn), 40 * MIB, "bytes the CDN sent")
        # The CDN logs a download when its last byte is sent; the Hub's answers (listing, resolves, 302s
        # to the CDN) are small, so their log times show when the downloads could start.
        hub = [log_time(line) for line in log if line["listener"] == "hub"]
        listing = max(hub) - min(hub)
        print(f"40 MiB in {elapsed:.2f} s, Hub requests over {listing:.2f} s")
        check(listing < 1, f"{listing:.2f} s from the first to the last Hub request (listing and resolves)")
        within(elapsed, 10.0, 0.10, "time for 40 MiB with --bandwidth 4M")

    def test_recovery_after_429(self):
        generate(self.hubsim, "small-files", self.fixtures)
        repo = "small/repo-00"
        quota, window = 100, 6
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            # Another client behind the same address (no token) spends the whole resolver budget first.
            for _ in range(quota):
                equal(sim.head(f"/{repo}/resolve/main/config.json").status, 200, "status while spending")
            spent = len(sim.log())
            result = self.warm.run(sim, self.warm.manifest(repo + "\n"), self.cache)
            equal(result.returncode, 0, "exit code after a spent resolver budget\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, {repo: None})
        spending = log_time(log[spent - 1]) - log_time(log[0])
        check(spending < window / 2, f"spending the budget took {spending:.2f} s of the {window} s window")
        ours = self.anonymous(log[spent:], "resolvers")
        window_reset = log_time(log[0]) + window
        refused = [line for line in ours if line["status"] == 429]
        accepted = [line for line in ours if line["status"] != 429]
        check(refused and accepted, "hfwarmd's resolver requests after the budget was spent: "
              + str([(line["time"], line["status"]) for line in ours[:5]]))
        first_refusal = log_time(refused[0])
        # Between the first 429 and the reset hfwarmd waits: at most one probe, never a retry storm.
        waiting = [line for line in ours if first_refusal < log_time(line) < window_reset]
        # The Hub's `t` is whole seconds rounded up, so a client that waits for it resumes up to 1 s after
        # the reset; one more second allows for jitter and a loaded machine.
        late = log_time(accepted[0]) - window_reset
        print(f"{len(refused)} 429s, {len(waiting)} requests in the {window_reset - first_refusal:.2f} s "
              f"from the 429 to the reset, first accepted request {late:+.2f} s from the reset")
        check(len(waiting) <= 1, f"{len(waiting)} requests between the 429 and the reset: "
              + str([(line["time"], line["status"]) for line in waiting]))
        check(len(refused) <= 2, f"{len(refused)} 429s: the first request and at most one probe")
        check(-0.05 <= late <= 2.0, f"first accepted request {late:+.2f} s from the window reset")
        files = len(fixture_files(self.fixtures, repo))
        check(len(accepted) >= files, f"only {len(accepted)} accepted resolver requests for {files} files")

    def test_api_quota(self):
        generate(self.hubsim, "small-files", self.fixtures)
        repos = [f"small/repo-{i:02d}" for i in range(40)]
        quota, window = 19, 6
        floor = len(repos) / quota * window
        # 40 listings, 19 per 6 s: 12.6 s. Aligned to windows opening at the first listing the floor is
        # (ceil(40 / 19) - 1) x 6 s = 12 s, inside 15 % of 12.6 s. A client that paces by the remaining
        # budget over the time to the reset sends q - 1 requests a window (the request that told it the
        # budget was already counted): a 1/q slowdown, so the quota is not a tiny one. One file per repo
        # keeps the resolver class, whose quota is off here, out of the timing.
        manifest = self.warm.manifest("".join(f"{repo} file:config.json\n" for repo in repos))
        with self.sim("--api-quota", str(quota), "--window", str(window), "--resolver-quota", "0") as sim:
            result, elapsed = self.timed_run(sim, manifest)
            equal(result.returncode, 0, f"exit code under an api quota of {quota} per {window} s\n"
                  + describe(result))
            log = self.anonymous(sim.log(), "api")
            self.check_repos(sim, {repo: {"config.json"} for repo in repos})
        check(len(log) >= len(repos), f"only {len(log)} listings for {len(repos)} repos")
        refused = refusals_per_window(log, window)
        print(f"{len(repos)} listings in {elapsed:.2f} s, floor {floor:.2f} s, 429s per window {refused}")
        check(max(refused) <= 1, f"429s per {window} s window (at most one each): {refused}")
        within(elapsed, floor, 0.15, f"time for {len(repos)} listings at {quota} api requests per {window} s")


    def test_anonymous_budget(self):
        """The Hub's anonymous budget (the simulator's defaults: 500 api, 3,000 resolver requests per 300 s)
        covers 10 repos of 51 files in one window: the warm takes about as long as under a budget 100
        times larger (the Enterprise Plus limits the bench uses), where pacing at q/w would take 51 s.
        (With no headers at all the configured rate applies, 9 per second: also about 51 s.)"""
        generate(self.hubsim, "small-files", self.fixtures)
        repos = [f"small/repo-{i:02d}" for i in range(10)]
        manifest = self.warm.manifest("".join(r + "\n" for r in repos))
        with self.sim("--api-quota", "100000", "--resolver-quota", "500000") as sim:
            result, unlimited = self.timed_run(sim, manifest)
            equal(result.returncode, 0, "exit code under a large budget\n" + describe(result))
        self.cache = os.path.join(self.tmp, "cache-anonymous")
        with self.sim() as sim:
            result, elapsed = self.timed_run(sim, manifest)
            equal(result.returncode, 0, "exit code under the anonymous budget\n" + describe(result))
            log = sim.log()
            self.check_repos(sim, {repo: None for repo in repos})
        ours = [line for line in log if not line["auth"] and line["class"] in ("api", "resolvers")]
        files = sum(len(fixture_files(self.fixtures, repo)) for repo in repos)
        print(f"{files} files in {elapsed:.2f} s under the anonymous budget, {unlimited:.2f} s under a large one; "
              f"{len(ours)} Hub requests")
        equal(sum(line["status"] == 429 for line in ours), 0, "429s under the anonymous budget")
        check(len([line for line in ours if line["class"] == "resolvers"]) >= files,
              f"resolver requests for {files} files")
        check(elapsed <= 1.5 * unlimited + 1.0,
              f"{elapsed:.2f} s under the anonymous budget vs {unlimited:.2f} s under a large one (at most 1.5x + 1 s)")

    def test_over_quota(self):
        """More work than three windows: with --reserve 0.2 no window sees more than 40 of a quota of 50,
        at most one 429 each, and the run ends within 10 % of the floor that share allows."""
        generate(self.hubsim, "small-files", self.fixtures)
        repos = [f"small/repo-{i:02d}" for i in range(3)]
        files = sum(len(fixture_files(self.fixtures, repo)) for repo in repos)
        quota, window, reserve = 50, 3, 0.2
        spend = share(quota, reserve)
        # 153 files at 40 per 3 s: the 4th window holds the last 33, so the floor is 3 x 3 s.
        floor = (math.ceil(files / spend) - 1) * window
        check(files % spend > spend // 2, f"{files} files leave a last window of {files % spend}")
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            result, elapsed = self.timed_run(sim, self.warm.manifest("".join(r + "\n" for r in repos)),
                                             "--reserve", str(reserve))
            equal(result.returncode, 0, f"exit code over a quota of {quota} per {window} s\n" + describe(result))
            log = self.anonymous(sim.log(), "resolvers")
            self.check_repos(sim, {repo: None for repo in repos})
        sent = requests_per_window(log, window)
        refused = refusals_per_window(log, window)
        print(f"{files} files in {elapsed:.2f} s, floor {floor} s; requests per window {sent}, 429s {refused}")
        check(max(sent) <= spend, f"requests per {window} s window, at most {spend} with --reserve {reserve}: {sent}")
        check(max(refused) <= 1, f"429s per {window} s window (at most one each): {refused}")
        equal(len(sent), math.ceil(files / spend), f"windows used by {files} requests at {spend} a window")
        check(floor <= elapsed <= 1.1 * floor + 0.5,
              f"{elapsed:.2f} s for {files} files at {spend} per {window} s: floor {floor} s, at most 1.1x + 0.5 s")

    def test_reserve_for_others(self):
        """While hfwarmd warms under a quota of 50 per 6 s with --reserve 0.2, another client on the same
        address (no token) sends 8 requests after hfwarmd has spent its 40 of the window: the reserve
        answers all of them, in that same window."""
        generate(self.hubsim, "small-files", self.fixtures)
        repos = [f"small/repo-{i:02d}" for i in range(2)]
        quota, window, reserve, others = 50, 6, 0.2, 8
        spend = share(quota, reserve)
        with self.sim("--resolver-quota", str(quota), "--window", str(window), "--api-quota", "0") as sim:
            process = self.warm.start(sim, self.warm.manifest("".join(r + "\n" for r in repos)), self.cache,
                                      "--reserve", str(reserve))
            try:
                wait_for(f"hfwarmd's first {spend} resolver requests",
                         lambda: len(self.anonymous(sim.log(), "resolvers")) >= spend)
                answers = [sim.head(f"/{repos[0]}/resolve/main/config.json").status for _ in range(others)]
                code = process.wait(timeout=40)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            with open(process.output, errors="replace") as f:
                output = f.read()
            equal(code, 0, "exit code of the warm\n" + output[-4000:])
            log = self.anonymous(sim.log(), "resolvers")
            self.check_repos(sim, {repo: None for repo in repos})
        equal(answers, [200] * others, "statuses of the other client's requests during the warm")
        windows = fixed_windows(log, window)
        first = windows[0][1]
        theirs = [line for line in first if line["method"] == "HEAD"]
        ours = [line for line in first if line["method"] != "HEAD"]
        print(f"first window: {len(ours)} of hfwarmd's requests, {len(theirs)} of the other client's; "
              f"requests per window {requests_per_window(log, window)}")
        equal(len(theirs), others, "the other client's requests in hfwarmd's first window")
        equal(len(ours), spend, f"hfwarmd's requests in its first window (the quota {quota} less the reserve)")
        for _, group in windows[1:]:
            mine = [line for line in group if line["method"] != "HEAD"]
            check(len(mine) <= spend, f"hfwarmd's requests in a later window: {len(mine)} > {spend}")
        check(all(line["status"] != 429 for line in log), "a 429 while the reserve was kept: "
              + str([(line["time"], line["method"], line["status"]) for line in log if line["status"] == 429]))


def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "ratelimit-test-")


if __name__ == "__main__":
    sys.exit(main())
