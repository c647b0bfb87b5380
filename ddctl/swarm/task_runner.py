"""What one dream task of a swarm batch runs, inside the dream image (sent as `python3 -I -c`).

Standard library only; never imports ddctl. It asks the exchange (exchange_server.py) for
the picture of its slot, runs the engine's ordinary command on it with the output in a
tmpfs, uploads the results and commits them. Exit status: 0 once the picture has a result
(done or failed: a picture the engine refuses is reported, not retried), 1 when the
exchange cannot be reached (swarm's restart policy runs the task again).

Environment: DDCTL_EXCHANGE (http://name:port), DDCTL_ROUND, DDCTL_SLOT ({{.Task.Slot}},
which swarm renders as a node ID for slot 0), DDCTL_TASK ({{.Task.ID}}), DDCTL_NODE
({{.Node.Hostname}}).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

WORK = os.environ.get("DDCTL_WORK", "/tmp/ddctl-task")
ENGINE = [sys.executable, "-I", "-B", "-m", "engine"]  # the image's own entry point
ENGINE_DIR = "/opt/ddctl"


def say(**fields):
    print(json.dumps({"event": "task", **fields}), flush=True)


def http(method, url, data=None, patience=90):
    """(status, body) of one request, retried while the exchange is not reachable yet, for
    `patience` seconds in all: a task whose batch was removed ends soon by itself."""
    last = None
    end = time.monotonic() + patience
    while True:
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError as e:  # DNS not there yet, connection refused, timeout
            last = e
            if time.monotonic() > end:
                break
            time.sleep(2)
    raise SystemExit(f"ddctl task: the exchange at {url} does not answer: {last}")


def slot_number(text):
    # {{.Task.Slot}} is rendered as the node's ID for slot 0 of a replicated job.
    return int(text) if text.isdigit() else 0


def main():
    base = os.environ["DDCTL_EXCHANGE"].rstrip("/")
    rnd = os.environ.get("DDCTL_ROUND", "0")
    slot = slot_number(os.environ.get("DDCTL_SLOT", "0"))
    task = os.environ.get("DDCTL_TASK", "task")[:25] or "task"
    node = os.environ.get("DDCTL_NODE", "?")
    code, body = http("GET", f"{base}/job/{rnd}/{slot}")
    if code != 200:
        raise SystemExit(f"ddctl task: no picture for round {rnd} slot {slot} ({code})")
    meta = json.loads(body)
    pid = meta["pid"]
    if http("GET", f"{base}/done/{pid}")[0] == 200:
        say(pid=pid, note="already done elsewhere")
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    inp, out = os.path.join(WORK, "in"), os.path.join(WORK, "out")
    os.makedirs(inp)
    os.makedirs(out)
    code, data = http("GET", f"{base}/input/{pid}")
    if code != 200:
        raise SystemExit(f"ddctl task: the input of {pid} is missing ({code})")
    src = os.path.join(inp, meta["filename"])
    with open(src, "wb") as f:
        f.write(data)
    args = [src if a == "{input}" else a.replace("{output}", out) for a in meta["args"]]
    say(pid=pid, node=node, slot=slot)
    started = time.monotonic()
    proc = subprocess.Popen(
        ENGINE + args,
        cwd=ENGINE_DIR if os.path.isdir(ENGINE_DIR) else WORK,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    done = error = start = None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        print(line, flush=True)
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            kind = ev.get("event")
            done = ev if kind == "done" else done
            error = ev if kind == "error" else error
            start = ev if kind == "start" else start
    stderr = proc.stderr.read().decode("utf-8", "replace")
    rc = proc.wait()
    record = {
        "node": node,
        "seconds": round(time.monotonic() - started, 2),
        "seed": (start or {}).get("seed"),
        "exit": rc,
    }
    if rc == 0 and done:
        for folder, _dirs, files in os.walk(out):
            for name in files:
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, out)
                with open(full, "rb") as f:
                    c, _ = http("PUT", f"{base}/upload/{pid}/{task}/{quote(rel)}", f.read())
                if c != 201:
                    raise SystemExit(f"ddctl task: upload of {rel} refused ({c})")
        record.update(status="done", final=os.path.relpath(done["path"], out))
    else:
        if error and error.get("message"):
            why = str(error["message"])
        elif rc in (-9, 137):
            why = "the engine was killed (out of memory?): try a smaller --max-size"
        else:
            tail = " | ".join(x for x in stderr.strip().splitlines()[-3:])
            why = f"the engine failed (exit {rc}): {tail}"
        record.update(status="failed", error=" ".join(why.split()), code=(error or {}).get("code"))
    c, _ = http("POST", f"{base}/commit/{pid}/{task}", json.dumps(record).encode())
    say(pid=pid, committed=c == 201, status=record["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
