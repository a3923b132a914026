"""Runs Debian's nginx with the HTTP cache recipe of docs/operations.md in front of hfwarm-hubsim.

The recipe is read from the docs' one ```nginx block, so the test runs what users copy. Only its
hosts, ports and paths change, each by an exact replacement that must match: a recipe edited so that
a replacement no longer applies fails the test with the text it looked for, instead of testing
something else. nginx runs in the foreground (`daemon off;`) with its own prefix, pid file, logs
and temp folders under the case's temp folder; the system service is never used.
"""

import http.client
import os
import re
import shutil
import socket
import subprocess
import time

from hfwarm_testing import check, write_text

# What the recipe names, and what the test puts there (filled with the simulator's ports and the
# case's folders). The simulator's certificate is for `localhost`, 127.0.0.1 and ::1; nginx checks
# names only (not IP addresses), so the names it verifies become `localhost`.
RECIPE_HUB = "huggingface.co"
RECIPE_CDN_HOSTS = r"cdn-lfs[a-z0-9.-]*\.hf\.co|cas-bridge\.xethub\.hf\.co"
RECIPE_PORT = "8080"
RECIPE_CACHE = "/var/cache/nginx/hf"
RECIPE_LOG = "/var/log/nginx/hf-cache.log"
RECIPE_CA = "/etc/ssl/certs/ca-certificates.crt"
SYNC = "/_hubsim/log-sync"


def docs_recipe(docs):
    """The text of the one ```nginx block of `docs` (docs/operations.md)."""
    with open(docs) as f:
        blocks = re.findall(r"^```nginx\n(.*?)^```$", f.read(), re.S | re.M)
    check(len(blocks) == 1, f"{docs}: expected one ```nginx block (the HTTP cache recipe), found {len(blocks)}")
    return blocks[0]


def free_port():
    """A loopback port free now (nginx cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostport(url):
    """`https://127.0.0.1:4443` -> `127.0.0.1:4443`."""
    return url.split("://", 1)[1].rstrip("/")


def adapt(recipe, port, hub, cdn, ca, folder):
    """The recipe with its hosts, ports and paths replaced for a local run (see the module doc)."""
    replacements = [
        (f"proxy_ssl_name {RECIPE_HUB};", "proxy_ssl_name localhost;"),
        ("proxy_ssl_name $cdn_host;", "proxy_ssl_name localhost;"),
        (f"https://{RECIPE_HUB};", f"https://{hostport(hub)};"),
        (f"Host {RECIPE_HUB};", f"Host {hostport(hub)};"),
        (RECIPE_CDN_HOSTS, re.escape(hostport(cdn))),
        (f"listen {RECIPE_PORT};", f"listen 127.0.0.1:{port};"),
        (f"$host:{RECIPE_PORT}/", f"$host:{port}/"),
        (RECIPE_CACHE + " ", os.path.join(folder, "cache") + " "),
        (RECIPE_LOG + " ", os.path.join(folder, "access.log") + " "),
        (RECIPE_CA + ";", ca + ";"),
    ]
    for old, new in replacements:
        check(old in recipe, f"the nginx recipe of docs/operations.md no longer contains {old!r}, which the "
                             "fleet test replaces for a local run: update tests/fleet/nginx_support.py with it")
        recipe = recipe.replace(old, new)
    check(RECIPE_HUB not in recipe, f"the recipe names {RECIPE_HUB} where the test replaces nothing:\n{recipe}")
    return recipe


class Nginx:
    """nginx with the docs' recipe in front of `sim`, on a free loopback port, for a `with`; it trusts
    the simulator's CA, or `ca`."""

    def __init__(self, docs, sim, folder, ca=None):
        self.exe = shutil.which("nginx") or "/usr/sbin/nginx"
        check(os.path.exists(self.exe), "nginx is not installed (scripts/common.sh installs it)")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = os.path.join(folder, "access.log")
        self.error_log = os.path.join(folder, "error.log")
        server = adapt(docs_recipe(docs), self.port, sim.hub, sim.cdn, ca or sim.ca, folder)
        temp = os.path.join(folder, "temp")
        os.makedirs(temp, exist_ok=True)
        # As root, nginx would run its workers as nobody, who cannot write the case's folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config = write_text(os.path.join(folder, "nginx.conf"), f"""daemon off;
{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {temp}/client;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{server}}}
""")
        self.process = None

    def get(self, target):
        """One GET through nginx; returns (status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", target)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def __enter__(self):
        command = [self.exe, "-p", self.folder, "-c", self.config, "-e", self.error_log]
        test = subprocess.run(command + ["-t"], capture_output=True, text=True, timeout=30)
        check(test.returncode == 0, f"nginx -t refuses the adapted recipe ({self.config}):\n{test.stderr}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                pass
            check(self.process.poll() is None and time.monotonic() < deadline,
                  f"nginx did not listen on port {self.port} within 10 s:\n{self.errors()}")
            time.sleep(0.05)

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def errors(self):
        if not os.path.exists(self.error_log):
            return ""
        with open(self.error_log, errors="replace") as f:
            return f.read()[-4000:]

    def requests(self):
        """The access log (the recipe's hf_cache format) as dicts: status, cache (HIT, MISS, ... or -),
        method, uri, range (or -), bytes; without the sync request itself.
        nginx writes a line right after a response's last write, in the same turn of its one worker's
        event loop, so once that worker has answered a later request every earlier line is there: the
        sync request is the simulator's `/_hubsim/log-sync`, through nginx."""
        status, _ = self.get(SYNC)
        check(status == 204, f"{SYNC} through nginx answered {status}:\n{self.errors()}")
        lines = []
        pattern = re.compile(r'(\S+) (\d+) (\S+) (\S+) "([^"]*)" "([^"]*)" (\d+) (\S+)$')
        with open(self.access_log) as f:
            for line in f:
                match = pattern.match(line.strip())
                check(match, f"an access log line not in the recipe's hf_cache format: {line!r}")
                _, status, cache, method, uri, ranged, sent, _ = match.groups()
                if uri != SYNC:
                    lines.append({"status": int(status), "cache": cache, "method": method, "uri": uri,
                                  "range": ranged, "bytes": int(sent)})
        return lines
