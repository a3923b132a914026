#!/usr/bin/env python3
"""`hfwarmd` against hostile neighbours: a socket folder created first by another user, 200 clients
that pipeline requests and never read, and clients that subscribe to take every slot.

usage: hostile_clients_test.py HFWARMD HFWARMCTL HUBSIM_EXE HUBSIM_SOURCE_DIR CASE   (one process per case)
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HUBSIM_DIR = sys.argv[4] if len(sys.argv) > 4 else os.path.join(os.path.dirname(__file__), "..", "hubsim")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.abspath(HUBSIM_DIR))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from hfwarm_testing import check, clean_env, equal, write_text  # noqa: E402
from hubsim_support import Simulator  # noqa: E402
from daemon_support import Daemon, connect, describe, poll, rpc, rpc_line, small_repo, write_repo, run_daemon_case  # noqa: E402

SKIP = 77  # meson's exit code for a skipped test
MIB = 1 << 20


def memory_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB: its resident memory now and at its peak."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def flood(path, method="status"):
    """Connects and writes pipelined `method` requests until the daemon stops reading (the kernel's
    buffers are full); never reads. Returns the socket (kept open) and the bytes written."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.setblocking(False)
    chunk = b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": method}).encode() + b"\n"
                     for i in range(1000))
    written = 0
    while True:
        try:
            written += sock.send(chunk)
        except BlockingIOError:
            return sock, written


class TwoUsers:
    """Two Unix users made for the test (useradd), removed with their files at the end."""

    def __init__(self):
        self.names = []

    def add(self):
        name = "hfw" + uuid.uuid4().hex[:10]
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        self.names.append(name)
        return pwd.getpwnam(name)

    def remove(self):
        for name in self.names:
            subprocess.run(["userdel", name], capture_output=True)


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

    def start_sim(self, *args):
        workdir = tempfile.mkdtemp(prefix="sim-", dir=self.tmp)
        self.simulator = Simulator(self.hubsim, self.fixtures, *args, workdir=workdir).__enter__()
        return self.simulator

    def config(self, settings):
        return write_text(os.path.join(self.tmp, "hfwarmd.json"), json.dumps(settings))

    def cleanup(self):
        for daemon in self.daemons:
            daemon.stop()
        if self.simulator is not None:
            self.simulator.__exit__(None, None, None)

    def logs(self):
        return "\n".join(daemon.log() for daemon in self.daemons)

    # ---- a socket folder that another user made first ----

    def test_socket_dir_two_users(self):
        if os.geteuid() != 0:
            print("skipped: creating a second Unix user (useradd) needs root")
            return SKIP
        users = TwoUsers()
        try:
            self.two_users(users)
        finally:
            users.remove()
        return 0

    def run_as(self, user, args, env, timeout=20):
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, user=user.pw_uid,
                              group=user.pw_gid, extra_groups=[], errors="replace")

    def two_users(self, users):
        victim = users.add()
        attacker = users.add()
        # Files of the victim's daemon in a folder the victim owns; no XDG_RUNTIME_DIR, so the daemon
        # falls back to /tmp/hfwarm-UID as its socket folder.
        home = tempfile.mkdtemp(prefix="hfwarm-users-", dir="/tmp")
        os.chmod(home, 0o755)
        work = os.path.join(home, "victim")
        os.makedirs(work)
        manifest = write_text(os.path.join(work, "manifest.txt"), "test/small\n")
        env = clean_env(work)
        for name in ("HFWARM_SOCKET", "XDG_RUNTIME_DIR"):
            env.pop(name, None)
        for base, dirs, names in os.walk(home):
            for name in dirs + names + ["."]:
                os.chown(os.path.join(base, name), victim.pw_uid, victim.pw_gid)
        os.chown(home, 0, 0)
        folder = f"/tmp/hfwarm-{victim.pw_uid}"
        shutil.rmtree(folder, ignore_errors=True)
        daemon_args = [self.hfwarmd, "--manifest", manifest, "--cache-dir", os.path.join(work, "cache"), "--offline"]
        try:
            # The attacker makes the folder first: as its owner, and then also open to everyone.
            for mode in (0o700, 0o777):
                os.mkdir(folder)
                os.chown(folder, attacker.pw_uid, attacker.pw_gid)
                os.chmod(folder, mode)
                result = self.run_as(victim, daemon_args, env)
                check(result.returncode != 0, f"hfwarmd used a socket folder owned by another user (mode {mode:o})\n"
                      + describe(result))
                output = result.stdout + result.stderr
                check(f"refusing the socket directory {folder}: it belongs to user {attacker.pw_uid}" in output,
                      "the refusal does not name the folder and its owner\n" + describe(result))
                check("remove it" in output, "the refusal does not say what to do\n" + describe(result))
                equal(os.listdir(folder), [], "files hfwarmd left in the other user's folder")
                shutil.rmtree(folder)

            # The victim's own folder, but writable by others: refused as well.
            os.mkdir(folder)
            os.chown(folder, victim.pw_uid, victim.pw_gid)
            os.chmod(folder, 0o777)
            result = self.run_as(victim, daemon_args, env)
            check(result.returncode != 0, "hfwarmd used a socket folder others can write\n" + describe(result))
            check("lets other users replace the socket; run chmod go-w" in result.stdout + result.stderr,
                  "the refusal does not say how to fix the mode\n" + describe(result))
            shutil.rmtree(folder)

            # No folder: the daemon makes its own, 0700, and serves its user but not the attacker.
            log = open(os.path.join(work, "daemon.log"), "w")
            daemon = subprocess.Popen(daemon_args, stdout=log, stderr=subprocess.STDOUT, env=env, user=victim.pw_uid,
                                      group=victim.pw_gid, extra_groups=[])
            try:
                sock = os.path.join(folder, "hfwarmd.sock")
                poll(lambda: os.path.exists(sock) or daemon.poll() is not None, 20, f"{sock} to appear")
                check(daemon.poll() is None, f"hfwarmd exited with {daemon.returncode} in its own socket folder")
                st = os.lstat(folder)
                # 0700 plus group search, which the default socket_mode 0660 needs: nobody else may write.
                equal((st.st_uid, oct(st.st_mode & 0o7777)), (victim.pw_uid, oct(0o710)),
                      "owner and mode of the socket folder hfwarmd made")
                mine = self.run_as(victim, [self.hfwarmctl, "version"], env)
                equal(mine.returncode, 0, "hfwarmctl version as the daemon's user\n" + describe(mine))
                theirs = self.run_as(attacker, [self.hfwarmctl, "--socket", sock, "version"], clean_env(home))
                equal(theirs.returncode, 3, "hfwarmctl version as another user\n" + describe(theirs))
                check("permission denied" in theirs.stderr.lower(), "another user's failure\n" + describe(theirs))
            finally:
                daemon.terminate()
                daemon.wait(timeout=10)
                log.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)

    # ---- clients that pipeline and never read ----

    def test_slow_clients(self):
        self.start_sim()
        d = Daemon(self, self.manifest_file("test/small\n")).start()
        d.wait_ready()
        before, _ = memory_kib(d.process.pid)
        floods = []
        sent = 0
        for _ in range(200):
            sock, written = flood(d.socket)
            floods.append(sock)
            sent += written
        # Every flooding client is now blocked: the daemon stopped reading each one. Ask it for a
        # cheap answer and time it.
        started = time.monotonic()
        version = rpc(d.socket, "version")
        latency = time.monotonic() - started
        check("result" in version, f"version reply: {version}")
        status_started = time.monotonic()
        status = rpc(d.socket, "status")
        status_latency = time.monotonic() - status_started
        check("result" in status, f"status reply: {status}")
        now, peak = memory_kib(d.process.pid)
        print(f"200 clients flooding status requests ({sent // MIB} MiB written, none read): version answered in "
              f"{latency * 1000:.0f} ms, status in {status_latency * 1000:.0f} ms; daemon RSS {before // 1024} MiB "
              f"before, {now // 1024} MiB after, peak {peak // 1024} MiB")
        check(latency < 1.0, f"version took {latency:.2f} s with 200 clients that never read")
        check(peak < 64 * 1024, f"the daemon's peak RSS was {peak // 1024} MiB with 200 clients that never read")
        for sock in floods:
            sock.close()
        # Once they are gone the daemon still serves.
        equal(rpc(d.socket, "version")["result"]["protocol"], 1, "protocol after the flood")

    def manifest_file(self, text):
        return write_text(os.path.join(self.tmp, "manifest.txt"), text)

    # ---- subscribers cannot take every slot ----

    def test_subscribers_capped(self):
        self.start_sim()
        config = self.config({"max_clients": 8})
        d = Daemon(self, self.manifest_file("test/small\n"), extra=["--config", config]).start()
        subscribers = []
        refused = None
        for _ in range(8):
            sock = connect(d.socket)
            reply = rpc_line(sock, b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
            if "error" in reply:
                refused = reply
                sock.close()
                break
            subscribers.append(sock)
        equal(len(subscribers), 4, "subscriptions accepted with max_clients 8")
        check(refused is not None and "too many subscribers" in refused["error"]["message"],
              f"the fifth subscriber's reply: {refused}")
        result = d.ctl("version")
        equal(result.returncode, 0, "hfwarmctl version with every subscriber slot taken\n" + describe(result))
        for sock in subscribers:
            sock.close()


def main():
    return run_daemon_case(Case, sys.argv, "hfwh-")


if __name__ == "__main__":
    sys.exit(main())
