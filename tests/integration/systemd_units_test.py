#!/usr/bin/env python3
"""The systemd units and the man pages, as meson configured and built them.

- Every unit passes `systemd-analyze verify` with no message at all (verify only warns about an
  unknown or misspelt directive and still exits 0, so any output is a failure), the services with
  ExecStart= pointed at the built hfwarmd, since verify checks that the binary exists.
- The sandboxing stays where it is: `systemd-analyze security --offline` under a threshold.
- The directives that the daemon and the docs rely on are there (Type=notify, the socket path...).
- The man pages document every flag and command that `--help` lists, the environment variables
  and the exit codes; the pages that scdoc built exist and render without a groff warning.

systemd-analyze is required; it needs no running systemd (the user units get a private
XDG_RUNTIME_DIR and HOME). A missing systemd-analyze fails the test instead of skipping it, so that
a CI image without it is noticed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# systemd-analyze security's scale is 0 (best) to 10 (worst); --threshold takes tenths. The system
# template measures 1.6. A user service is rated as if it ran as root, so the capability items that
# cannot apply to a user manager count against it: it measures 4.0.
SYSTEM_EXPOSURE_LIMIT = 20
USER_EXPOSURE_LIMIT = 45

HFWARMD_ENVIRONMENT = [
    "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_ENDPOINT", "HF_TOKEN",
    "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "HF_OFFLINE", "CI_OFFLINE_MODE", "HFWARM_SOCKET", "NOTIFY_SOCKET",
    "LISTEN_FDS",
]
HFWARMD_SIGNALS = ["SIGHUP", "SIGTERM", "SIGINT"]
HFWARMD_EXIT_CODES = ["0", "1", "2"]
HFWARMCTL_EXIT_CODES = ["0", "1", "2", "3", "124"]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def run(command, env=None):
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def unit_directives(text):
    """Each `Key=value` line of a unit, as (section, key, value), comments and blank lines left out."""
    section = None
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        result.append((section, key.strip(), value.strip()))
    return result


def has(directives, section, key, value=None):
    return any(s == section and k == key and (value is None or v == value) for s, k, v in directives)


def prepare_units(paths, bindir, hfwarmd, dest):
    """Copies the units into dest with ExecStart= and ExecReload= pointed at the built hfwarmd."""
    installed = f"{bindir}/hfwarmd"
    copies = []
    for path in paths:
        text = path.read_text()
        name = path.name
        leftover = re.findall(r"@[A-Za-z0-9_]+@", text)
        check(not leftover, f"{name}: placeholders left after configuration: {leftover}")
        if name.endswith(".service"):
            check(f"ExecStart={installed}" in text,
                  f"{name}: ExecStart= does not start {installed} (the configured bindir)")
            text = text.replace(installed, str(hfwarmd))
        copy = dest / name
        copy.write_text(text)
        copies.append(copy)
    return copies


def verify(args, env, what):
    """Runs systemd-analyze verify; any output or a non-zero exit is a failure."""
    result = run(["systemd-analyze", *args], env=env)
    output = (result.stdout + result.stderr).strip()
    check(result.returncode == 0 and not output,
          f"systemd-analyze verify of {what} exited {result.returncode} and said:\n{output}")


def check_user_units(copies, env):
    by_name = {p.name: p for p in copies}
    service = by_name["hfwarmd.service"]
    socket = by_name["hfwarmd.socket"]
    verify(["--user", "verify", "--man=no", str(service), str(socket)], env, "the user units")
    result = run(["systemd-analyze", "--user", "security", "--offline=yes", "--no-pager",
                  f"--threshold={USER_EXPOSURE_LIMIT}", str(service)], env=env)
    check(result.returncode == 0,
          f"hfwarmd.service: exposure above {USER_EXPOSURE_LIMIT / 10}:\n{result.stdout[-2000:]}{result.stderr}")

    s = unit_directives(service.read_text())
    check(has(s, "Service", "Type", "notify"), "hfwarmd.service: not Type=notify")
    check(has(s, "Service", "ExecReload", "/bin/kill -HUP $MAINPID"), "hfwarmd.service: reload is not SIGHUP")
    check(has(s, "Service", "Restart", "on-failure"), "hfwarmd.service: no Restart=on-failure")
    check(has(s, "Service", "RuntimeDirectory", "hfwarm"), "hfwarmd.service: no RuntimeDirectory=hfwarm")
    # The socket unit's socket lives in that folder: removing it on stop would orphan the socket.
    check(has(s, "Service", "RuntimeDirectoryPreserve", "yes"),
          "hfwarmd.service: the runtime folder (and hfwarmd.socket's socket file) would be removed on stop")
    check(has(s, "Service", "CacheDirectory", "huggingface"),
          "hfwarmd.service: ~/.cache/huggingface is not writable in the sandbox")
    for key in ["NoNewPrivileges", "PrivateTmp", "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime"]:
        check(has(s, "Service", key, "yes"), f"hfwarmd.service: no {key}=yes")
    check(has(s, "Service", "ProtectSystem", "strict"), "hfwarmd.service: no ProtectSystem=strict")
    check(has(s, "Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
          "hfwarmd.service: address families not restricted to AF_UNIX AF_INET AF_INET6")
    check(has(s, "Install", "WantedBy", "default.target"), "hfwarmd.service: not WantedBy=default.target")

    k = unit_directives(socket.read_text())
    check(has(k, "Socket", "ListenStream", "%t/hfwarm/hfwarmd.sock"),
          "hfwarmd.socket: does not listen on %t/hfwarm/hfwarmd.sock, the daemon's default path")
    check(has(k, "Socket", "SocketMode", "0660"), "hfwarmd.socket: mode is not 0660")
    check(has(k, "Install", "WantedBy", "sockets.target"), "hfwarmd.socket: not WantedBy=sockets.target")


def check_system_template(template, env):
    # Both the template (verify tries it with a test instance) and an instance named like a runner.
    instance = template.with_name("hfwarmd@runner.service")
    shutil.copyfile(template, instance)
    verify(["verify", "--man=no", str(template)], env, template.name)
    verify(["verify", "--man=no", str(instance)], env, instance.name)
    result = run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                  f"--threshold={SYSTEM_EXPOSURE_LIMIT}", str(instance)], env=env)
    check(result.returncode == 0,
          f"hfwarmd@.service: exposure above {SYSTEM_EXPOSURE_LIMIT / 10}:\n{result.stdout[-2000:]}{result.stderr}")

    t = unit_directives(template.read_text())
    check(has(t, "Service", "User", "%i"), "hfwarmd@.service: does not run as User=%i")
    check(has(t, "Service", "Type", "notify"), "hfwarmd@.service: not Type=notify")
    exec_start = next((v for s, k, v in t if k == "ExecStart"), "")
    check("--config /etc/hfwarm/hfwarmd.json" in exec_start, "hfwarmd@.service: does not read /etc/hfwarm/hfwarmd.json")
    check("--socket /run/hfwarm/%i/hfwarmd.sock" in exec_start,
          "hfwarmd@.service: socket is not /run/hfwarm/%i/hfwarmd.sock")
    check(has(t, "Service", "RuntimeDirectory", "hfwarm/%i"),
          "hfwarmd@.service: no RuntimeDirectory for the socket folder")
    check(has(t, "Service", "CacheDirectory", "hfwarm/%i") and has(t, "Service", "Environment", "HF_HOME=%C/hfwarm/%i"),
          "hfwarmd@.service: the cache is not the CacheDirectory= given as HF_HOME")
    for key in ["NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "RestrictNamespaces", "RestrictSUIDSGID", "LockPersonality",
                "MemoryDenyWriteExecute"]:
        check(has(t, "Service", key, "yes"), f"hfwarmd@.service: no {key}=yes")
    check(has(t, "Service", "ProtectSystem", "strict"), "hfwarmd@.service: no ProtectSystem=strict")
    check(has(t, "Service", "ProtectHome", "read-only"), "hfwarmd@.service: homes are not read-only")
    check(has(t, "Service", "CapabilityBoundingSet", ""), "hfwarmd@.service: capabilities not dropped")
    check(has(t, "Service", "SystemCallFilter", "@system-service"), "hfwarmd@.service: no system call filter")
    check(has(t, "Service", "UMask", "0027"), "hfwarmd@.service: UMask is not 0027")


def help_text(binary, *args):
    result = run([str(binary), *args, "--help"])
    check(result.returncode == 0, f"{binary.name} {' '.join(args)} --help exited {result.returncode}: {result.stderr}")
    return result.stdout


def long_flags(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))


def subcommands(help_output):
    """The names under CLI11's "Subcommands:" heading."""
    names = []
    in_section = False
    for line in help_output.splitlines():
        if line.strip().lower().startswith("subcommands:"):
            in_section = True
            continue
        if in_section:
            match = re.match(r"\s+([a-z][a-z-]*)\b", line)
            if match:
                names.append(match.group(1))
            elif line.strip() and not line.startswith(" "):
                in_section = False
    return names


def section(scd, name):
    """The text of one `# NAME` section of an scdoc page."""
    match = re.search(rf"^# {name}\n(.*?)(?=^# |\Z)", scd, re.S | re.M)
    return match.group(1) if match else ""


def check_codes(page, scd, codes):
    exit_status = section(scd, "EXIT STATUS")
    documented = re.findall(r"^\*(\d+)\*$", exit_status, re.M)
    check(documented == codes, f"{page}: EXIT STATUS lists {documented}, expected {codes}")


def check_hfwarmd_page(scd, hfwarmd):
    page = "hfwarmd.8.scd"
    options = section(scd, "OPTIONS")
    documented = set(re.findall(r"^\*(--[a-z-]+)\*", options, re.M))
    flags = long_flags(help_text(hfwarmd))
    check(flags, "hfwarmd --help lists no flags")
    missing, extra = sorted(flags - documented), sorted(documented - flags)
    check(not missing, f"{page}: OPTIONS misses flags that hfwarmd --help lists: {missing}")
    check(not extra, f"{page}: OPTIONS documents flags hfwarmd does not have: {extra}")
    environment = section(scd, "ENVIRONMENT")
    for variable in HFWARMD_ENVIRONMENT:
        check(re.search(rf"\*{variable}\*", environment), f"{page}: ENVIRONMENT does not describe {variable}")
    signals = section(scd, "SIGNALS")
    for signal in HFWARMD_SIGNALS:
        check(f"*{signal}*" in signals, f"{page}: SIGNALS does not describe {signal}")
    check_codes(page, scd, HFWARMD_EXIT_CODES)
    for path in ["/etc/hfwarm/hfwarmd.json", "hfwarm/hfwarmd.json"]:
        check(path in scd, f"{page}: does not say where the config file is ({path})")


def check_hfwarmctl_page(scd, hfwarmctl):
    page = "hfwarmctl.1.scd"
    top = help_text(hfwarmctl)
    global_flags = long_flags(re.split(r"^subcommands:", top, flags=re.I | re.M)[0]) - {"--help", "--version"}
    options = section(scd, "OPTIONS")
    for flag in global_flags:
        check(f"*{flag}*" in options, f"{page}: OPTIONS does not describe {flag}")
    commands_text = section(scd, "COMMANDS")
    documented = re.findall(r"^\*([a-z-]+)\*", commands_text, re.M)
    names = subcommands(top)
    check(names, "hfwarmctl --help lists no commands")
    check(set(names) == set(documented),
          f"{page}: COMMANDS documents {sorted(documented)}, hfwarmctl has {sorted(names)}")
    for name in names:
        entry = re.search(rf"^\*{name}\*(.*)$", commands_text, re.M)
        flags = long_flags(help_text(hfwarmctl, name)) - {"--help"} - global_flags
        for flag in flags:
            check(entry and f"*{flag}*" in entry.group(1),
                  f"{page}: the heading of {name} does not show its option {flag}")
    check_codes(page, scd, HFWARMCTL_EXIT_CODES)


def check_built_page(path):
    text = path.read_text() if check(path.is_file(), f"{path}: scdoc was found but the page was not built") else ""
    if not text:
        return
    name, number = path.name.rsplit(".", 1)
    check(text.startswith('.\\" Generated by scdoc'), f"{path}: not scdoc output")
    check(f'.TH "{name}" "{number}"' in text, f"{path}: no .TH header for {name}({number})")
    result = run(["groff", "-man", "-ww", "-z", "-Tutf8", str(path)])
    check(result.returncode == 0 and not result.stderr.strip(), f"{path}: groff warns:\n{result.stderr}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bindir", required=True, help="the bindir the units were configured with")
    parser.add_argument("--hfwarmd", required=True, type=Path)
    parser.add_argument("--hfwarmctl", required=True, type=Path)
    parser.add_argument("--user-unit", action="append", type=Path, default=[])
    parser.add_argument("--system-unit", action="append", type=Path, default=[])
    parser.add_argument("--man-source", action="append", type=Path, default=[])
    parser.add_argument("--man-page", action="append", type=Path, default=[])
    parser.add_argument("--scdoc", help="the scdoc that meson found, when it found one")
    args = parser.parse_args()

    if shutil.which("systemd-analyze") is None:
        print("FAIL: systemd-analyze is not installed; install the systemd package to verify the units",
              file=sys.stderr)
        return 1
    hfwarmd = args.hfwarmd.resolve()
    hfwarmctl = args.hfwarmctl.resolve()

    with tempfile.TemporaryDirectory(prefix="hfwarm-units-") as tmp:
        tmp = Path(tmp)
        # The user manager's paths (%t, %h, %C) come from these; verify needs no running manager.
        (tmp / "run").mkdir(mode=0o700)
        (tmp / "home").mkdir()
        env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp / "run"), HOME=str(tmp / "home"), SYSTEMD_LOG_COLOR="0")
        env.pop("XDG_CONFIG_HOME", None)
        env.pop("XDG_CACHE_HOME", None)
        (tmp / "user").mkdir()
        (tmp / "system").mkdir()
        user = prepare_units(args.user_unit, args.bindir, hfwarmd, tmp / "user")
        system = prepare_units(args.system_unit, args.bindir, hfwarmd, tmp / "system")
        check({p.name for p in user} == {"hfwarmd.service", "hfwarmd.socket"},
              f"user units given: {[p.name for p in user]}")
        check([p.name for p in system] == ["hfwarmd@.service"], f"system units given: {[p.name for p in system]}")
        if not failures:
            check_user_units(user, env)
            check_system_template(system[0], env)

    sources = {p.name: p.read_text() for p in args.man_source}
    check(set(sources) == {"hfwarmd.8.scd", "hfwarmctl.1.scd"}, f"man sources given: {sorted(sources)}")
    if "hfwarmd.8.scd" in sources:
        check_hfwarmd_page(sources["hfwarmd.8.scd"], hfwarmd)
    if "hfwarmctl.1.scd" in sources:
        check_hfwarmctl_page(sources["hfwarmctl.1.scd"], hfwarmctl)
    if args.scdoc:
        check(len(args.man_page) == 2, f"meson found {args.scdoc} but built {len(args.man_page)} man pages, not 2")
    for page in args.man_page:
        check_built_page(page)

    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not failures:
        print("units verified; man pages cover every flag and command")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
