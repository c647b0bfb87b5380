"""The result of one check (pipx `commands/health.py` style): the CLI renders it."""

from dataclasses import asdict, dataclass, field
from typing import Optional

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"


@dataclass
class CheckResult:
    name: str  # stable id: endpoint, socket, protocol, ...
    status: str  # ok | warn | fail | skipped
    detail: str  # one line: what was found
    hint: Optional[str] = None  # what to do about it (a command to run)
    fix: Optional[str] = None  # what `ddctl doctor --fix` will do, when it can
    data: dict = field(default_factory=dict)  # facts for -v and --json
    title: str = ""  # human name, filled in by the runner
    group: str = ""  # "" or "security", filled in by the runner

    def as_dict(self):
        return asdict(self)


def ok(name, detail, **kw):
    return CheckResult(name, OK, detail, **kw)


def warn(name, detail, **kw):
    return CheckResult(name, WARN, detail, **kw)


def fail(name, detail, **kw):
    return CheckResult(name, FAIL, detail, **kw)


def skipped(name, detail, **kw):
    return CheckResult(name, SKIPPED, detail, **kw)
