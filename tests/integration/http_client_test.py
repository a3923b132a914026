#!/usr/bin/env python3
"""http::Client and the hub calls against hfwarm-hubsim: listings, redirects, the CDN hop, pooling,
TLS verification, stalls and resets (checks in http_check.cpp), and from the simulator's log: the
token never reaches the CDN listener.

usage: http_client_test.py HUBSIM_EXE HTTP_CHECK_EXE HUBSIM_SOURCE_DIR
"""

import os
import subprocess
import sys
import tempfile

TOKEN = "hf_test_token_for_http_check"


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
    print("all scenarios passed")


if __name__ == "__main__":
    main()
