#!/usr/bin/env python3
"""http::Client and the hub calls against hfwarm-hubsim: listings, redirects, the CDN hop, pooling,
TLS verification, stalls, resets and HTTPS_PROXY/NO_PROXY through a small CONNECT proxy (checks in
http_check.cpp), and from the simulator's log: the token never reaches the CDN listener.

usage: http_client_test.py HUBSIM_EXE HTTP_CHECK_EXE HUBSIM_SOURCE_DIR
"""

import os
import select
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading

TOKEN = "hf_test_token_for_http_check"


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that only tunnels (CONNECT), recording each target."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), TunnelHandler)
        self.targets = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class TunnelHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(4096)
            if not data:
                return
            head += data
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(target)
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=30)
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [self.request, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.request else self.request).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


def run_checker(checker, scenario, sim, env=None):
    result = subprocess.run([checker, scenario, sim.hub, sim.ca, TOKEN], capture_output=True, text=True,
                            timeout=240, env=env)
    print(f"--- scenario {scenario}")
    print(result.stdout, end="")
    if result.stderr:
        print(result.stderr, end="")
    assert result.returncode == 0, f"scenario {scenario} failed"


def run_proxy_scenarios(sim_module, hubsim, checker, fixtures):
    with sim_module.Simulator(hubsim, fixtures) as sim, ConnectProxy() as proxy:
        hub_authority = sim.hub.split("://", 1)[1]
        env = dict(os.environ, HTTPS_PROXY=proxy.url, NO_PROXY="")
        env.pop("https_proxy", None)
        env.pop("no_proxy", None)
        run_checker(checker, "proxy", sim, env)
        assert hub_authority in proxy.targets, f"no tunnel to the Hub: {proxy.targets}"
        assert len(proxy.targets) >= 2, f"the CDN did not go through the proxy: {proxy.targets}"
        print(f"ok: {len(proxy.targets)} tunnels through the proxy")

        tunnels = len(proxy.targets)
        env["NO_PROXY"] = "localhost,127.0.0.1"
        run_checker(checker, "proxy", sim, env)
        assert len(proxy.targets) == tunnels, f"NO_PROXY hosts went through the proxy: {proxy.targets[tunnels:]}"
        print("ok: NO_PROXY hosts go direct")


def run_scenario(sim_module, hubsim, checker, fixtures, scenario, *sim_args):
    with sim_module.Simulator(hubsim, fixtures, *sim_args) as sim:
        result = subprocess.run([checker, scenario, sim.hub, sim.ca, TOKEN], capture_output=True, text=True,
                                timeout=240)
        print(f"--- scenario {scenario}")
        print(result.stdout, end="")
        if result.stderr:
            print(result.stderr, end="")
        assert result.returncode == 0, f"scenario {scenario} failed"
        log = sim.log()
        cdn = [r for r in log if r.get("listener") == "cdn"]
        assert cdn, "no request reached the CDN listener"
        leaked = [r for r in cdn if r.get("auth")]
        assert not leaked, f"Authorization reached the CDN: {leaked}"
        if scenario == "basic":
            gated = [r for r in log if "gated-model" in r.get("target", "") and r.get("status") == 200]
            assert gated and all(r.get("auth") for r in gated), "the token did not reach the Hub listener"
        print(f"ok: scenario {scenario}: {len(log)} requests, {len(cdn)} on the CDN, none with Authorization")


def main():
    hubsim, checker, hubsim_dir = sys.argv[1:4]
    sys.path.insert(0, hubsim_dir)
    import hubsim_support as sim_module

    with tempfile.TemporaryDirectory(prefix="http-client-test-") as tmp:
        fixtures = os.path.join(tmp, "fixtures")
        sim_module.generate(hubsim, "demo", fixtures)
        run_scenario(sim_module, hubsim, checker, fixtures, "basic", "--page-size", "3", "--token", TOKEN)
        run_scenario(sim_module, hubsim, checker, fixtures, "stall", "--stall", "4", "--stall-first", "1")
        run_scenario(sim_module, hubsim, checker, fixtures, "reset", "--reset-first", "1", "--reset-after", "300000")
        run_proxy_scenarios(sim_module, hubsim, checker, fixtures)
    print("all scenarios passed")


if __name__ == "__main__":
    main()
