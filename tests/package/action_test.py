#!/usr/bin/env python3
"""The GitHub Action's steps (scripts/action.sh, in the order action.yml runs them) on this machine,
with the runner's files faked ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH and $GITHUB_STATE, fresh
for each step as the runner makes them) and hfwarm-hubsim as the Hub: the outputs, the exports, what
the log shows of the token, and the cache the following steps read offline.

The build cache is warm here (the prefix holds this build's programs, as actions/cache restores
them), so `install` must compile nothing.

usage: action_test.py HFWARMD HFWARMCTL HUBSIM_EXE SOURCE_ROOT CASE   (one process per case)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

SOURCE_ROOT = os.path.abspath(sys.argv[4])
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
for folder in ("hubsim", "integration", "support", "interop"):
    sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", folder))
import offline_lookup as lookup  # noqa: E402
from actions_runner import parse_file_command  # noqa: E402
from daemon_support import poll  # noqa: E402
from hfwarm_testing import check, clean_env, equal, run_case, write_json, write_text  # noqa: E402
from hubsim_support import Simulator, generate  # noqa: E402
from warm_support import api_path  # noqa: E402

ACTION = os.path.join(SOURCE_ROOT, "scripts", "action.sh")
TOKEN = "hf_actiontesttoken0123456789"
GATED = "hubsim/gated-model"
MANIFEST = f"sentence-transformers/all-MiniLM-L6-v2\ngpt2 include:*.json\n{GATED}\n"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_OFFLINE": "true", "CI_OFFLINE_MODE": "true"}


class Step:
    """What one step left: its exit code, output and the runner files it wrote (parsed)."""

    def __init__(self, done, files):
        self.code = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.outputs = parse_file_command(files["GITHUB_OUTPUT"], "$GITHUB_OUTPUT")
        self.env = parse_file_command(files["GITHUB_ENV"])
        self.path = [line for line in files["GITHUB_PATH"].splitlines() if line]
        self.state = files["GITHUB_STATE"]
        self.raw = files

    def describe(self):
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


class Case:
    def __init__(self, hfwarmd, hfwarmctl, hubsim, tmp):
        self.tmp = tmp
        self.hfwarmd = hfwarmd
        self.hfwarmctl = hfwarmctl
        self.hubsim = hubsim
        self.fixtures = os.path.join(tmp, "fixtures")
        generate(hubsim, "demo", self.fixtures)
        self.runner_temp = os.path.join(tmp, "runner-temp")
        os.makedirs(self.runner_temp)
        # The job's environment: no token, cache or config of this machine; what earlier steps
        # exported ($GITHUB_ENV, $GITHUB_PATH) is added as the runner adds it.
        self.env = clean_env(tmp, RUNNER_TEMP=self.runner_temp, RUNNER_TOOL_CACHE=os.path.join(tmp, "toolcache"),
                             RUNNER_OS="Linux")
        self.steps = 0

    def step(self, command, **inputs):
        self.steps += 1
        files = {}
        for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE"):
            files[name] = write_text(os.path.join(self.tmp, f"step{self.steps}", name), "")
        env = dict(self.env, **files, **{"INPUT_" + k.upper(): v for k, v in inputs.items()})
        done = subprocess.run([ACTION, command], capture_output=True, text=True, env=env, timeout=120)
        written = {}
        for name, path in files.items():
            with open(path) as f:
                written[name] = f.read()
        step = Step(done, written)
        check(step.code == 0, f"scripts/action.sh {command}\n{step.describe()}")
        self.env.update(step.env)
        if step.path:
            self.env["PATH"] = os.pathsep.join(step.path[::-1] + [self.env["PATH"]])
        # A composite action has no post step: nothing may rely on $GITHUB_STATE.
        equal(step.state, "", f"{command}: $GITHUB_STATE")
        return step

    def install(self):
        """build-key, a restored build cache, install: the programs are on PATH."""
        step = self.step("build-key")
        key, prefix = step.outputs.get("key", ""), step.outputs.get("prefix", "")
        check(key.startswith("hfwarm-build-Linux-"), f"build key {key!r}")
        equal(os.path.dirname(prefix), os.path.join(self.env["RUNNER_TOOL_CACHE"], "hfwarm"), "build prefix")
        os.makedirs(os.path.join(prefix, "bin"))
        for program in (self.hfwarmd, self.hfwarmctl):
            shutil.copy(program, os.path.join(prefix, "bin"))
        step = self.step("install")
        equal(step.path, [os.path.join(prefix, "bin")], "install: $GITHUB_PATH")
        check("restored from the build cache" in step.stderr, f"install built instead of using the cache\n{step.describe()}")
        check(not os.path.exists(os.path.join(self.runner_temp, "hfwarm-build")), "install configured a build")

    def cache_key(self, sim, manifest):
        config = write_json(os.path.join(self.tmp, "hfwarmd.json"), {"endpoint": sim.hub, "ca_file": sim.ca})
        step = self.step("cache-key", manifest=manifest, config=config)
        digest = subprocess.run([self.hfwarmctl, "cache-key", manifest], capture_output=True, text=True).stdout.strip()
        equal(step.outputs.get("cache-key"), "hf-models-Linux-" + digest, "cache-key output")
        cache = os.path.join(self.env["HF_HOME"], "hub")
        equal(step.outputs.get("cache-dir"), cache, "cache-dir output: HF_HOME/hub, as hfwarmd resolves it")
        return config, cache

    def check_cache(self, sim, cache):
        """Every file the manifest selects is found offline in `cache`, with the Hub's size."""
        for repo, only in (("sentence-transformers/all-MiniLM-L6-v2", None), ("gpt2", "*.json"), (GATED, None)):
            commit = sim.get(f"{api_path(repo)}/revision/main").json()["sha"]
            files = sim.get(f"{api_path(repo)}/tree/{urllib.parse.quote(commit)}?recursive=true").json()
            selected = {e["path"]: e["size"] for e in files if e["type"] == "file"
                        and (only is None or e["path"].endswith(only[1:]))}
            check(selected, f"{repo}: nothing selected")
            folder = lookup.snapshot_download_offline(cache, repo, "main", allow_patterns=[only] if only else None)
            for path, size in selected.items():
                equal(os.path.getsize(os.path.join(folder, path)), size, f"{repo}/{path} in the cache")

    def check_token_hidden(self, step):
        """The token shows only in the ::add-mask:: command, which the runner hides."""
        equal(step.stdout.count(TOKEN), 1, "the token in the step's output")
        check(f"::add-mask::{TOKEN}\n" in step.stdout, "the token is not masked")
        for name, text in step.raw.items():
            check(TOKEN not in text, f"the token is in {name}")

    def test_once(self):
        manifest = write_text(os.path.join(self.tmp, "test", "model_manifest.txt"), MANIFEST)
        with Simulator(self.hubsim, self.fixtures, "--token", TOKEN) as sim:
            self.install()
            config, cache = self.cache_key(sim, manifest)
            step = self.step("warm", manifest=manifest, config=config, token=TOKEN, mode="once", offline="true")
            self.check_token_hidden(step)
            equal(step.env, dict(OFFLINE, HF_HUB_CACHE=cache), "warm: $GITHUB_ENV")
            self.check_cache(sim, cache)
            # A following step, with what the action exported, finds the same cache offline.
            equal(lookup.hub_cache_of(self.env), cache, "the cache huggingface_hub resolves after the action")
            check("HF_TOKEN" not in self.env, "HF_TOKEN reached the following steps")

    def test_once_fails(self):
        """A required entry that fails (a gated repo without the token) fails the step, exports nothing."""
        manifest = write_text(os.path.join(self.tmp, "manifest.txt"), MANIFEST)
        with Simulator(self.hubsim, self.fixtures, "--token", TOKEN) as sim:
            self.install()
            config, _ = self.cache_key(sim, manifest)
            files = {n: write_text(os.path.join(self.tmp, "fail", n), "") for n in ("GITHUB_ENV", "GITHUB_OUTPUT")}
            env = dict(self.env, **files, INPUT_MANIFEST=manifest, INPUT_CONFIG=config, INPUT_MODE="once")
            done = subprocess.run([ACTION, "warm"], capture_output=True, text=True, env=env, timeout=120)
            equal(done.returncode, 1, "warm without the token of a gated repo: exit code")
            check(GATED in done.stdout + done.stderr, f"the failure does not name {GATED}:\n{done.stderr[-3000:]}")
            with open(files["GITHUB_ENV"]) as f:
                equal(f.read(), "", "$GITHUB_ENV after a failed warm")

    def test_sidecar(self):
        manifest = write_text(os.path.join(self.tmp, "manifest.txt"), MANIFEST)
        with Simulator(self.hubsim, self.fixtures, "--token", TOKEN) as sim:
            self.install()
            config, cache = self.cache_key(sim, manifest)
            step = self.step("warm", manifest=manifest, config=config, token=TOKEN, mode="sidecar", offline="false")
            socket = os.path.join(self.runner_temp, "hfwarmd.sock")
            try:
                self.check_token_hidden(step)
                equal(step.env, {"HFWARM_SOCKET": socket, "HF_HUB_CACHE": cache}, "warm sidecar: $GITHUB_ENV")
                # A later step: `hfwarmctl wait` finds the daemon through HFWARM_SOCKET alone.
                done = subprocess.run(["hfwarmctl", "wait", "--timeout", "60"], capture_output=True, text=True,
                                      env=self.env, timeout=90)
                equal(done.returncode, 0, f"hfwarmctl wait\n{done.stderr}")
                self.check_cache(sim, cache)
            finally:
                subprocess.run(["hfwarmctl", "shutdown"], capture_output=True, env=self.env, timeout=30)
                poll(lambda: subprocess.run(["hfwarmctl", "version"], capture_output=True, env=self.env,
                                            timeout=30).returncode == 3, 20, "hfwarmd to stop")
        with open(os.path.join(self.runner_temp, "hfwarmd.log")) as f:
            check(TOKEN not in f.read(), "the token is in hfwarmd's log")


def main():
    hfwarmd, hfwarmctl, hubsim, case = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
    return run_case(lambda tmp: Case(hfwarmd, hfwarmctl, hubsim, tmp), case, "action-test-")


if __name__ == "__main__":
    sys.exit(main())
