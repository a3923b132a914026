#!/usr/bin/env python3
"""Four `hfwarmd --once` runs in parallel, as runners of a fleet behind one IP, share the Hub's resolver
budget through one real `redis-server` (config key `redis`, DESIGN.md section 7): together they get at
most one 429 per fixed window of hfwarm-hubsim, and no window sees more than the quota less the reserve
(issue 12: one shared count, spent as fast as the daemons can), even for a runner that joins once the
window is spent, before it has heard the Hub's policy, and with the Hub stopped as a window turns (its
window then opens well after the fleet's count does). With a budget that covers the work, four runners
are about as fast as one doing it all. The URL's password and database are used (AUTH, SELECT)
and every resolver request is counted there once. With Redis down, hfwarmd falls back to its local budget,
says so once, paces itself instead of spending the announced window at once, and still finishes; when
Redis comes back mid-window it stays paced until the Hub's next reset.

usage: redis_test.py HFWARMD HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (meson runs one process per case)
The Redis server is Debian's `redis-server` (scripts/common.sh installs it), started here on a free port
with no persistence; the system service is never used.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HUBSIM_DIR = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, equal, run_case  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from ratelimit_test import log_time, refusals_per_window, requests_per_window, share, wait_for  # noqa: E402
from warm_support import Warm, check_repo, fixture_files  # noqa: E402

# The test's own look-ups use a token, which the simulator counts apart from the anonymous runners.
TOKEN = "hf_redisCheckToken0123456789abcd"
REPO = "small/repo-00"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_command(port, *args):
    """One command over RESP2, for the test's own checks; returns the raw reply line."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload.encode())
        return s.recv(4096).decode()


class Redis:
    """`redis-server` on a free loopback port, without persistence, for the length of a `with`."""

    def __init__(self, tmp, *extra):
        self.exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        check(os.path.exists(self.exe), "redis-server is not installed (scripts/common.sh installs it)")
        self.extra = list(extra)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=tmp)
        self.process = None

    def __enter__(self):
        with open(os.path.join(self.dir, "redis.log"), "w") as log:
            self.process = subprocess.Popen(
                [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir, "--daemonize", "no", *self.extra], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                # With a password PING answers -NOAUTH, which shows the server is up just as well.
                if redis_command(self.port, "PING")[:1] in ("+", "-"):
                    return self
            except OSError:
                pass
            check(self.process.poll() is None and time.monotonic() < deadline,
                  f"redis-server on port {self.port} did not answer PING within 10 s")
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


class Case:
    def __init__(self, hfwarmd, hubsim, tmp):
        self.hubsim = hubsim
        self.tmp = tmp
        self.fixtures = os.path.join(tmp, "fixtures")
        self.warm = Warm(hfwarmd, tmp)
        generate(hubsim, "small-files", self.fixtures)
        self.files = fixture_files(self.fixtures, REPO)

    def sim(self, *args):
        return Simulator(self.hubsim, self.fixtures, "--token", TOKEN, *args,
                         workdir=tempfile.mkdtemp(prefix="sim-", dir=self.tmp))

    def runners(self, sim, redis_url, count, repos=(REPO,), name="runner", settings=None):
        """`count` runners started together, each with its own cache, all with the same `redis` key
        (and `settings`, more config keys); waits for them all; returns (exit code, output, cache) per
        runner."""
        return self.finish(self.start(sim, redis_url, count, repos, name, settings))

    def start(self, sim, redis_url, count, repos=(REPO,), name="runner", settings=None):
        """Starts runners as runners() does, without waiting; returns (process, output file, cache)."""
        config = self.warm.config(dict(settings or {}, redis=redis_url))
        manifest = self.warm.manifest("".join(repo + "\n" for repo in repos))
        started = []
        for i in range(count):
            cache = os.path.join(self.tmp, f"{name}-{i}-cache")
            output = os.path.join(self.tmp, f"{name}-{i}.out")
            with open(output, "w") as out:
                process = subprocess.Popen(self.warm.command(sim, manifest, cache, "--config", config),
                                           stdout=out, stderr=subprocess.STDOUT, env=self.warm.env, cwd=self.warm.cwd)
            started.append((process, output, cache))
        return started

    @staticmethod
    def finish(started):
        """Waits for runners start() started; returns (exit code, output, cache) per runner."""
        results = []
        for process, output, cache in started:
            try:
                code = process.wait(timeout=50)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = "killed after 50 s"
            with open(output, errors="replace") as f:
                results.append((code, f.read(), cache))
        return results

    def check_caches(self, sim, results):
        head = sim.head(f"/{REPO}/resolve/main/config.json", {"Authorization": f"Bearer {TOKEN}"})
        equal(head.status, 200, "status of the check request for the commit")
        for code, output, cache in results:
            equal(code, 0, f"exit code of a runner\n{output[-4000:]}")
            check_repo(cache, REPO, head.header("X-Repo-Commit"), self.files)

    def test_shared_quota(self):
        # Four runners: with local budgets alone they get two 429s per window here (each sees the Hub's
        # `r` and spends it), which is what the shared budget is for.
        quota, window, count = 40, 3, 4
        with Redis(self.tmp) as redis, self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            started = time.monotonic()
            results = self.runners(sim, redis.url, count)
            elapsed = time.monotonic() - started
            log = [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]
            self.check_caches(sim, results)
        for _, output, _ in results:
            check("sharing the rate limits through redis" in output, "no word of the shared budget:\n" + output)
            check("redis unavailable" not in output, "Redis reported down while it ran:\n" + output)
        check(len(log) >= count * len(self.files),
              f"only {len(log)} resolver requests for {count} x {len(self.files)} files")
        refused = refusals_per_window(log)
        sent = requests_per_window(log)
        print(f"{count} runners x {len(self.files)} files, {len(log)} resolver requests in {elapsed:.2f} s, "
              f"requests per {window} s window {sent}, 429s per window {refused}")
        check(max(refused) <= 1, f"429s per {window} s window with a shared budget (at most one each): {refused}")
        check(max(sent) <= share(quota), f"requests per {window} s window across the fleet, at most the quota "
              f"less the default reserve ({share(quota)}): {sent}")

    def test_late_runner(self):
        """A runner that joins once the fleet has spent the shared window: its first request is sent before
        it has heard the Hub's policy, so it only has a guess of the quota (the configured rate over
        300 s), and is held to the quota the others announced for the window instead."""
        quota, window = 100, 10
        with Redis(self.tmp) as redis, self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            def resolvers():
                return [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]

            early = self.start(sim, redis.url, 2, name="early")
            wait_for(f"the first {share(quota)} resolver requests of the two first runners",
                     lambda: len(resolvers()) >= share(quota))
            late = self.start(sim, redis.url, 1, name="late")
            results = self.finish(early + late)
            log = resolvers()
            self.check_caches(sim, results)
        sent = requests_per_window(log)
        print(f"3 runners, the last started after {share(quota)} requests: requests per {window} s window {sent}")
        equal(len(log), 3 * len(self.files), "resolver requests for three runners")
        equal(sum(line["status"] == 429 for line in log), 0, "429s with a shared budget")
        check(max(sent) <= share(quota), f"requests per {window} s window with a runner joining a spent window, "
              f"at most the quota less the default reserve ({share(quota)}): {sent}")

    def test_stalled_hub(self):
        """The Hub's window opens when a request arrives, which can be well after the count that opened the
        shared window: the Hub is stopped for 0.6 s (twice the shared window's margin) as the fleet's
        first shared window ends, so the requests waiting for the second reach it late. The shared window
        then ends at the reset the Hub announces, not 3.3 s after its first count, and no request
        waiting for the third goes into the Hub's second window."""
        quota, window, count, stall = 40, 3, 4, 0.6
        with Redis(self.tmp) as redis, self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            key = f"hfwarm:{urllib.parse.urlsplit(sim.hub).netloc}:resolvers"

            def ttl():
                return int(redis_command(redis.port, "PTTL", key).strip().lstrip(":"))

            def stall_second_window():
                # Once the first window is announced and all but over, so that the requests waiting for
                # the second one reach a stopped Hub.
                while not 0 < ttl() <= 100:
                    time.sleep(0.005)
                sim.process.send_signal(signal.SIGSTOP)
                time.sleep(stall)
                sim.process.send_signal(signal.SIGCONT)

            staller = threading.Thread(target=stall_second_window, daemon=True)
            staller.start()
            results = self.runners(sim, redis.url, count)
            staller.join(timeout=10)
            check(not staller.is_alive(), "the fleet's first shared window never ended")
            log = [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]
            self.check_caches(sim, results)
        refused = refusals_per_window(log)
        sent = requests_per_window(log)
        print(f"Hub stopped {stall} s as the first shared window ended: requests per {window} s window {sent}, "
              f"429s per window {refused}")
        check(max(refused) <= 1, f"429s per {window} s window with a shared budget (at most one each): {refused}")
        check(max(sent) <= share(quota), f"requests per {window} s window across the fleet with the Hub stalled, "
              f"at most the quota less the default reserve ({share(quota)}): {sent}")

    def test_fleet_covered(self):
        """The anonymous budget covers 4 x 51 files: the fleet sends them at once, as fast as one daemon
        warming 4 repos alone (within 1.3x, from each run's first to last resolver request in the
        simulator's log, so that starting four processes on a shared machine does not count), where
        pacing at q/w would take 204 / 10 = 20 s."""
        count = 4
        repos = [f"small/repo-{i:02d}" for i in range(count)]

        def span(lines):
            times = [log_time(line) for line in lines]
            return max(times) - min(times)

        with Redis(self.tmp) as redis, self.sim() as sim:
            alone = self.runners(sim, redis.url, 1, repos, name="alone")
            equal(alone[0][0], 0, f"exit code of the single runner\n{alone[0][1][-4000:]}")
            solo = span([line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]])
        with Redis(self.tmp) as redis, self.sim() as sim:
            results = self.runners(sim, redis.url, count)
            log = [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]
            self.check_caches(sim, results)
        elapsed = span(log)
        print(f"{count} runners x {len(self.files)} files: resolver requests over {elapsed:.2f} s; one runner, "
              f"{count} repos: {solo:.2f} s")
        equal(sum(line["status"] == 429 for line in log), 0, "429s with a budget that covers the work")
        check(len(log) == count * len(self.files), f"{len(log)} resolver requests for {count} x {len(self.files)} files")
        check(elapsed <= 1.3 * solo + 0.5,
              f"the fleet's resolver requests took {elapsed:.2f} s, one runner's alone {solo:.2f} s (at most 1.3x + 0.5 s)")

    def test_auth_and_db(self):
        password = "fleet-secret-0123"
        # No quota on the simulator: without an announced policy the shared window is the configured
        # rate over 300 s, so the counter is still there to read after the run.
        with Redis(self.tmp, "--requirepass", password) as redis, \
                self.sim("--resolver-quota", "0", "--api-quota", "0") as sim:
            results = self.runners(sim, f"redis://:{password}@127.0.0.1:{redis.port}/2", 1)
            log = [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]
            self.check_caches(sim, results)
            cli = ["redis-cli", "-p", str(redis.port), "-a", password, "--no-auth-warning", "-n", "2"]
            keys = subprocess.run(cli + ["--scan", "--pattern", "hfwarm:*"], capture_output=True, text=True,
                                  timeout=10).stdout.split()
            counts = {key: subprocess.run(cli + ["HGET", key, "n"], capture_output=True, text=True,
                                          timeout=10).stdout.strip() for key in keys}
            ttls = [int(subprocess.run(cli + ["TTL", key], capture_output=True, text=True,
                                       timeout=10).stdout.strip()) for key in keys]
        output = results[0][1]
        check(password not in output, "the Redis password appears in hfwarmd's output")
        resolvers = [key for key in keys if key.endswith(":resolvers")]
        equal(len(resolvers), 1, f"resolver counters in database 2 (keys {keys})")
        equal(int(counts[resolvers[0]]), len(log), "requests counted in Redis vs resolver requests the Hub saw")
        check(all(250 <= ttl <= 301 for ttl in ttls), f"TTLs of the 300 s windows (+1 s margin): {ttls}")
        print(f"counters {counts}, TTLs {ttls}")

    def test_redis_down(self):
        quota, window = 40, 2
        redis = Redis(self.tmp)
        with redis:
            pass
        # The port answered once and is closed now: every connection is refused.
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            started = time.monotonic()
            results = self.runners(sim, redis.url, 1)
            elapsed = time.monotonic() - started
            self.check_caches(sim, results)
        output = results[0][1]
        warnings = output.count("redis unavailable, using local rate limits only")
        equal(warnings, 1, "warnings about the unreachable Redis (one per outage)\n" + output[-4000:])
        check(f"127.0.0.1:{redis.port}" in output, "the warning does not name the Redis server:\n" + output[-4000:])
        print(f"{len(self.files)} files in {elapsed:.2f} s without Redis")

    def test_redis_down_paced(self):
        """A daemon configured with a Redis it cannot reach knows other daemons share the budget and
        cannot see them: it paces itself at the configured rate instead of spending the announced
        window at once, which the window rule would (here 89 of 100, bounded by the connections)."""
        quota, window, rate = 100, 10, 9
        redis = Redis(self.tmp)
        with redis:
            pass
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            results = self.runners(sim, redis.url, 1, settings={"limits": {"resolvers": {"rate": rate, "burst": 1}}})
            log = [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]
            self.check_caches(sim, results)
        times = sorted(log_time(line) for line in log)
        busiest = max(sum(1 for u in times if t <= u < t + 1) for t in times)
        print(f"{len(log)} resolver requests over {times[-1] - times[0]:.2f} s without Redis, at most {busiest} "
              f"in one second")
        equal(len(log), len(self.files), "resolver requests for the repo's files")
        equal(sum(line["status"] == 429 for line in log), 0, "429s of a daemon pacing itself")
        # The pace, the burst of one and two more for log lines written at the answer rather than at
        # the request (a slow answer followed by quick ones on a loaded machine). Spending the window
        # at once sends all 51 within a second.
        check(busiest <= rate + 3, f"{busiest} resolver requests in one second with Redis unreachable: more "
                                   f"than {rate} per second, the configured rate")


    def test_redis_back(self):
        """Redis comes back while the Hub's window runs: it never counted what the daemon sent meanwhile,
        so the daemon stays paced until the Hub's next reset instead of spending what remains of the
        window at once (here the whole of the repo's files are sent in that window)."""
        quota, window, rate = 100, 20, 9
        redis = Redis(self.tmp)
        with redis:
            pass
        with self.sim("--resolver-quota", str(quota), "--window", str(window)) as sim:
            def resolvers():
                return [line for line in sim.log() if line["class"] == "resolvers" and not line["auth"]]

            started = self.start(sim, redis.url, 1, settings={"limits": {"resolvers": {"rate": rate, "burst": 1}}})
            wait_for("the first 5 resolver requests without Redis", lambda: len(resolvers()) >= 5)
            with redis:
                results = self.finish(started)
            log = resolvers()
            self.check_caches(sim, results)
        output = results[0][1]
        check("redis reachable again" in output, "Redis never came back during the warm:\n" + output[-4000:])
        times = sorted(log_time(line) for line in log)
        busiest = max(sum(1 for u in times if t <= u < t + 1) for t in times)
        print(f"{len(log)} resolver requests over {times[-1] - times[0]:.2f} s, Redis back after the first 5, "
              f"at most {busiest} in one second")
        equal(len(log), len(self.files), "resolver requests for the repo's files")
        equal(requests_per_window(log), [len(self.files)], "requests per window: all in the first")
        equal(sum(line["status"] == 429 for line in log), 0, "429s of a daemon pacing itself")
        # The pace, the burst of one and two more for log lines written at the answer (as in
        # test_redis_down_paced). Going back to the shared count at once sends the rest within a second.
        check(busiest <= rate + 3, f"{busiest} resolver requests in one second after Redis came back mid-window: "
                                   f"more than {rate} per second, the configured rate")

def main():
    hfwarmd, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[4]
    return run_case(lambda tmp: Case(hfwarmd, hubsim, tmp), case, "redis-test-")


if __name__ == "__main__":
    sys.exit(main())
