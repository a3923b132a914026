"""Runs a real `hfwarmd` against hfwarm-hubsim and drives it through `hfwarmctl` and its socket.

Imported by daemon_test.py; the simulator is started with tests/hubsim/hubsim_support.py.
Every daemon gets its own socket, cache and environment under the case's temp folder, so the
cases run in parallel and never touch the machine's default socket or cache.
The importing script puts tests/support on sys.path for hfwarm_testing.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from hfwarm_testing import Failure, check, clean_env, equal, etag_of

MIB = 1 << 20


def repo_folder(repo):
    return "models--" + repo.replace("/", "--")


def poll(predicate, timeout, what, interval=0.1):
    """Calls predicate until it returns something true; returns that value or fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def write_repo(fixtures, repo, files):
    """Writes a fixture repo (path -> bytes) for the simulator; returns `files`."""
    for path, data in files.items():
        full = os.path.join(fixtures, repo, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    return files


def small_repo(seed=1):
    """Git files (one in a folder) and one LFS file."""
    rng = random.Random(seed)
    return {
        "config.json": b'{"model_type": "small"}\n',
        "tokenizer.json": json.dumps({"vocab": [rng.randbytes(8).hex() for _ in range(150)]}).encode(),
        "sub/vocab.txt": "\n".join(rng.randbytes(6).hex() for _ in range(80)).encode(),
        "weights.bin": rng.randbytes(200 * 1024),
    }


def big_repo(size, seed=2):
    """A small config and one LFS weight file of `size` random bytes."""
    return {"config.json": b'{"model_type": "big"}\n', "weights.bin": random.Random(seed).randbytes(size)}


def many_repo(count, seed=3):
    """`count` small git files: one resolver request each."""
    rng = random.Random(seed)
    return {f"part-{i:03}.txt": rng.randbytes(512).hex().encode() for i in range(count)}


def rpc_line(sock, line, timeout=10):
    """Sends one raw line (bytes) and reads one reply line; returns the decoded JSON."""
    sock.settimeout(timeout)
    sock.sendall(line)
    return json.loads(read_line(sock))


def read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise Failure(f"connection closed before a full reply line; got {data[:200]!r}")
        data += chunk
    return data


def connect(path, timeout=10):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def rpc(path, method, params=None, request_id=1):
    """One JSON-RPC call on a fresh connection; returns the whole response object."""
    request = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    with connect(path) as sock:
        return rpc_line(sock, json.dumps(request).encode() + b"\n")


class Daemon:
    """`hfwarmd` in the background with its own socket, cache and environment."""

    def __init__(self, case, manifest, cache=None, socket_path=None, extra=(), env=None, name="d", socket_flag=True):
        self.case = case
        self.manifest = manifest
        self.cache = cache or os.path.join(case.tmp, "cache")
        self.socket = socket_path or os.path.join(case.tmp, name + ".sock")
        self.log_path = os.path.join(case.tmp, name + ".log")
        self.extra = list(extra)
        self.env = clean_env(case.tmp, **(env or {}))
        self.socket_flag = socket_flag  # False: the daemon finds its socket in HFWARM_SOCKET
        self.process = None
        case.daemons.append(self)

    def command(self, sim=None):
        sim = sim or self.case.simulator
        args = [self.case.hfwarmd, "--manifest", self.manifest, "--cache-dir", self.cache, "--log-level", "debug"]
        if self.socket_flag:
            args += ["--socket", self.socket]
        if sim is not None:
            args += ["--endpoint", sim.hub, "--ca-file", sim.ca]
        return args + self.extra

    def start(self, wait=True, sim=None, popen_args=None):
        self.out = open(self.log_path, "a")
        self.out.write(f"==== start {time.strftime('%H:%M:%S')}\n")
        self.out.flush()
        command = self.command(sim)
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT, env=self.env,
                                        **(popen_args or {}))
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=20):
        def up():
            check(self.process.poll() is None,
                  f"hfwarmd exited with {self.process.returncode} before listening\n{self.log()}")
            try:
                rpc(self.socket, "version")
                return True
            except (OSError, ValueError, Failure):
                return False
        poll(up, timeout, f"hfwarmd to answer on {self.socket}", 0.05)

    def ctl(self, *args, timeout=60, env=None):
        """`hfwarmctl --socket S ARGS`: the CompletedProcess with text output."""
        return subprocess.run([self.case.hfwarmctl, "--socket", self.socket, *args], capture_output=True, text=True,
                              timeout=timeout, env=dict(self.env, **(env or {})), errors="replace")

    def status(self):
        """`hfwarmctl --json status`, parsed."""
        result = self.ctl("--json", "status")
        check(result.returncode in (0, 1), "hfwarmctl --json status\n" + describe(result))
        return json.loads(result.stdout)

    def entry(self, status, repo):
        found = [e for e in status["entries"] if e["repo"] == repo]
        equal(len(found), 1, f"entries of {repo} in status")
        return found[0]

    def raw_status(self):
        """The status result straight from the socket (no process spawned: for fast sampling)."""
        reply = rpc(self.socket, "status")
        check("result" in reply, f"status reply without result: {reply}")
        return reply["result"]

    def wait_ready(self, timeout=40, *repos):
        result = self.ctl("wait", "--timeout", str(timeout), *repos, timeout=timeout + 15)
        equal(result.returncode, 0, "hfwarmctl wait exit code\n" + describe(result) + "\n" + self.log())
        return result

    def stop(self, timeout=10):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def exited_within(self, seconds):
        try:
            self.process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def log(self, tail=6000):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return "(no daemon log)"
        return f"--- hfwarmd log {self.log_path} (tail)\n" + text[-tail:]

    def blob(self, repo, data):
        return os.path.join(self.cache, repo_folder(repo), "blobs", etag_of(data))

    def ref(self, repo, revision="main"):
        path = os.path.join(self.cache, repo_folder(repo), "refs", revision)
        with open(path) as f:
            return f.read()


def describe(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"


def run_daemon_case(make_case, argv, prefix):
    """The main of a daemon test script run as `SCRIPT HFWARMD HFWARMCTL HUBSIM_EXE HUBSIM_DIR CASE`:
    runs `test_<CASE>` of `make_case(hfwarmd, hfwarmctl, hubsim, tmp)` in a fresh temp folder, prints
    the daemon's logs on a failure, and always cleans up. Returns the exit code: 0, 1 on a failure, or
    what the case returned (77 for a skipped case). HFWARM_TEST_KEEP=1 keeps the temp folder."""
    hfwarmd, hfwarmctl, hubsim, _, name = argv[1:6]
    # Unix socket paths are limited to 107 bytes: keep the temp folder short.
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp" if len(tempfile.gettempdir()) > 40 else None)
    case = make_case(os.path.abspath(hfwarmd), os.path.abspath(hfwarmctl), os.path.abspath(hubsim), tmp)
    started = time.monotonic()
    try:
        code = getattr(case, "test_" + name)() or 0
    except Failure as e:
        print(f"FAIL {name}: {e}\n{case.logs()}", file=sys.stderr)
        return 1
    finally:
        case.cleanup()
        print(f"{name}: {time.monotonic() - started:.1f} s")
        if os.environ.get("HFWARM_TEST_KEEP") == "1":
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if code == 0:
        print(f"ok {name}")
    return code
