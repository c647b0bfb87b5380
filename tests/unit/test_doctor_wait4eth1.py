"""provision/boot2docker-wait4eth1.sh, run by sh with a fake `ip` on PATH."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SNIPPET = os.path.join(ROOT, "provision", "boot2docker-wait4eth1.sh")

FAKE_IP = """#!/bin/sh
# down for $DOWN calls, then up with an address; counts calls in $STATE
n=$(cat "$STATE" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$STATE"
if [ "$n" -le "$DOWN" ]; then
  echo "3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN qlen 1000"
else
  echo "3: eth1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP qlen 1000"
  echo "    inet 192.168.59.103/24 brd 192.168.59.255 scope global eth1"
fi
"""


def run(tmp_path, down, tries, shell="sh", how="sh"):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ip").write_text(FAKE_IP)
    (fake / "ip").chmod(0o755)
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "DOWN": str(down),
        "STATE": str(tmp_path / "calls"),
        "WAIT4ETH1_TRIES": str(tries),
        "WAIT4ETH1_INTERVAL": "0",
        "WAIT4ETH1_SETTLE": "0",
    }
    # sourced like the profile is, followed by a line that must still run
    cmd = [shell, "-c", f". {SNIPPET}; echo after=$?"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    calls = int((tmp_path / "calls").read_text())
    return r, calls


@pytest.mark.parametrize("shell", [s for s in ("sh", "dash", "busybox", "bash") if shutil.which(s)])
def test_waits_until_eth1_is_up(tmp_path, shell):
    r, calls = run(tmp_path, down=3, tries=10, shell=shell)
    assert r.returncode == 0 and "eth1 is up (after 3 waits)" in r.stdout and "after=0" in r.stdout
    assert calls == 4


def test_gives_up_after_its_limit_and_lets_the_boot_go_on(tmp_path):
    r, calls = run(tmp_path, down=1000, tries=5)
    assert calls == 5
    assert "not up after 5 tries; starting Docker anyway" in r.stderr
    assert r.returncode == 0 and "after=0" in r.stdout


def test_up_without_an_address_is_not_up(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ip").write_text("#!/bin/sh\necho '3: eth1: <NO-CARRIER,BROADCAST,MULTICAST,UP> state DOWN'\n")
    (fake / "ip").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "WAIT4ETH1_TRIES": "2", "WAIT4ETH1_INTERVAL": "0"}
    r = subprocess.run(["sh", "-c", f". {SNIPPET}"], env=env, capture_output=True, text=True, timeout=30)
    assert "not up after 2 tries" in r.stderr and r.returncode == 0
