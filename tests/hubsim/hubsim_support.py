"""Starts hfwarm-hubsim for a test and talks to it with the standard library only.

    with Simulator(exe, fixtures, "--page-size", "3") as sim:
        r = sim.get("/api/models/gpt2/revision/main")
        assert r.status == 200 and r.json()["sha"]

Integration tests of other modules may import it (sys.path.insert the folder of this file).
"""

import http.client
import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse


class Response:
    def __init__(self, status, headers, body, error=None):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.body = body
        self.error = error  # the exception that cut the body short, if any

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)


def generate(exe, profile, directory, *extra):
    subprocess.run([exe, "gen", "--profile", profile, *extra, str(directory)], check=True, timeout=300)


class Simulator:
    """`hfwarm-hubsim serve` on free ports; the ready file gives its URLs and CA."""

    def __init__(self, exe, fixtures, *args, workdir=None):
        self._own_dir = None if workdir else tempfile.TemporaryDirectory(prefix="hubsim-")
        self.dir = workdir or self._own_dir.name
        self.ready_file = os.path.join(self.dir, "ready.json")
        self.log_file = os.path.join(self.dir, "requests.jsonl")
        self.stderr_file = os.path.join(self.dir, "stderr.txt")
        self.command = [exe, "serve", "--fixtures", str(fixtures), "--ready-file", self.ready_file,
                        "--log", self.log_file, *args]
        self.process = None

    def __enter__(self):
        with open(self.stderr_file, "w") as err:
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ready_file):
            if self.process.poll() is not None:
                raise RuntimeError(f"hfwarm-hubsim exited with {self.process.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hfwarm-hubsim wrote no ready file within 30 s: {self.stderr()}")
            time.sleep(0.05)
        with open(self.ready_file) as f:
            self.ready = json.load(f)
        self.hub = self.ready["hub"]
        self.cdn = self.ready["cdn"]
        self.ca = self.ready["ca"]
        self.context = ssl.create_default_context(cafile=self.ca)
        return self

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir:
            self._own_dir.cleanup()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stderr(self):
        with open(self.stderr_file) as f:
            return f.read()

    def sync_log(self):
        """Waits until every request the simulator has read has its log line: it writes a line just
        after a response's last byte, a moment after the client may have read it."""
        if self.process and self.process.poll() is None:
            r = self.get("/_hubsim/log-sync")
            if r.status != 204:
                raise RuntimeError(f"log-sync answered {r.status}: {r.body[:200]!r}")

    def log(self):
        """The request log, exact up to the requests whose responses have been read."""
        self.sync_log()
        with open(self.log_file) as f:
            return [json.loads(line) for line in f if line.strip()]

    def connection(self, url):
        parts = urllib.parse.urlsplit(url)
        return http.client.HTTPSConnection(parts.hostname, parts.port, context=self.context, timeout=30)

    def request(self, method, url, headers=None, body=None):
        """One request without following redirects; `url` may be a path on the Hub listener."""
        if url.startswith("/"):
            url = self.hub + url
        parts = urllib.parse.urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn = self.connection(url)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            error = None
            try:
                data = response.read()
            except (http.client.IncompleteRead, ConnectionError, ssl.SSLError) as e:
                data = getattr(e, "partial", b"")
                error = e
            return Response(response.status, response.headers, data, error)
        finally:
            conn.close()

    def get(self, url, headers=None):
        return self.request("GET", url, headers)

    def head(self, url, headers=None):
        return self.request("HEAD", url, headers)

    def follow(self, url, headers=None):
        """GET following redirects: relative ones on the Hub, absolute ones to the CDN."""
        if url.startswith("/"):
            url = self.hub + url
        headers = dict(headers or {})
        for _ in range(10):
            r = self.get(url, headers)
            if r.status not in (301, 302, 307, 308):
                return r
            location = r.header("Location")
            if location.startswith("https://"):
                # Like the Hub's clients: a token never goes to another host (the CDN).
                if urllib.parse.urlsplit(location).netloc != urllib.parse.urlsplit(url).netloc:
                    headers.pop("Authorization", None)
                url = location
            else:
                url = self.hub + location
        raise RuntimeError("more than 10 redirects")
