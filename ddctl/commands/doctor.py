"""`ddctl doctor`, `ddctl doctor env`, `ddctl doctor profile`: parsing and rendering only.

The checks live in ddctl/doctor/; this module prints their results ([✓]/[!]/[✗]/[-]
lines, hint and fix lines under problems, a summary line) or one JSON document.
"""

import json
import os

from rich.markup import escape

from ddctl.client import make_client
from ddctl.doctor import profile, shellenv
from ddctl.doctor.checks import CHECKS
from ddctl.doctor.fixes import apply_fixes
from ddctl.doctor.result import FAIL, OK, SKIPPED, WARN
from ddctl.doctor.runner import Context, exit_code, run_checks, summarize

MARKS = {OK: "[green][✓][/]", WARN: "[yellow][!][/]", FAIL: "[red][✗][/]", SKIPPED: "[dim]\\[-][/]"}


def add_parser(sub):
    p = sub.add_parser(
        "doctor",
        help="find out why Docker does not answer, and fix what can be fixed",
        description="Check the Docker environment (endpoint, socket, TLS, daemon, image, security) "
        "and say how to fix what is wrong.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show what each check found")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.add_argument("--fix", action="store_true", help="apply the fixes the checks offer, then check again")
    p.set_defaults(func=run)
    dsub = p.add_subparsers(dest="doctor_command", metavar="SUBCOMMAND")

    e = dsub.add_parser("env", help="print the shell lines that point DOCKER_* at a daemon that answers")
    e.add_argument("--shell", choices=shellenv.SHELLS, help="shell syntax (default: from $SHELL)")
    e.add_argument("--unset", "-u", action="store_true", help="print the lines that clear the variables")
    e.set_defaults(func=run_env)

    pr = dsub.add_parser("profile", help="check or add the boot2docker wait4eth1 fix on the daemon's host")
    pr.add_argument(
        "--path",
        default="/var/lib/boot2docker/profile",
        help="the profile on the daemon's host (default: %(default)s)",
    )
    pr.add_argument("--apply", action="store_true", help="append the wait4eth1 snippet (once)")
    pr.add_argument("--image", help="run the repair in this image (default: one already on the daemon)")
    pr.set_defaults(func=run_profile)
    return p


def diagnose(timeout=5.0):
    ctx = Context(timeout=timeout)
    try:
        return run_checks(CHECKS, ctx), ctx
    finally:
        ctx.close()


def run(args, ui):
    fixes = []
    if args.fix:
        ctx = Context()
        try:
            results = run_checks(CHECKS, ctx)
            fixes = apply_fixes(results, ctx)
        finally:
            ctx.close()
        if fixes:  # check again, so that what is printed is the state after the fixes
            results, ctx = diagnose()
    else:
        results, ctx = diagnose()
    code = exit_code(results)
    if any(not f["ok"] for f in fixes):
        code = 1
    counts = summarize(results)
    if args.json:
        doc = {
            "checks": [r.as_dict() for r in results],
            "summary": counts,
            "fixes": fixes,
            "endpoint": ctx.endpoint.host if ctx.endpoint else None,
            "exit_code": code,
        }
        ui.out.file.write(json.dumps(doc, indent=2, default=str) + "\n")
        ui.out.file.flush()
        return code
    for f in fixes:
        mark = "[green]fixed[/]" if f["ok"] else "[red]fix failed[/]"
        ui.out.print(f"{mark}: {escape(f['message'])}", soft_wrap=True)
    group = ""
    for r in results:
        if r.group != group:
            group = r.group
            ui.out.print(f"[bold]{escape(group.capitalize())}[/]", soft_wrap=True)
        ui.out.print(f"{MARKS[r.status]} [bold]{escape(r.title):<19}[/] {escape(r.detail)}", soft_wrap=True)
        if r.status in (WARN, FAIL) and r.hint:
            ui.out.print(f"    [cyan]→[/] {escape(r.hint)}", soft_wrap=True)
        if r.status in (WARN, FAIL) and r.fix and not args.fix:
            ui.out.print(f"    [cyan]→[/] `ddctl doctor --fix` will {escape(r.fix)}", soft_wrap=True)
        if args.verbose:
            for k, v in r.data.items():
                ui.out.print(f"      [dim]{escape(k)}: {escape(str(v))}[/]", soft_wrap=True)
    line = (
        f"{counts[OK]} ok, {counts[WARN]} warning{'s' if counts[WARN] != 1 else ''}, "
        f"{counts[FAIL]} failed" + (f", {counts[SKIPPED]} skipped" if counts[SKIPPED] else "")
    )
    style = "red" if counts[FAIL] else ("yellow" if counts[WARN] else "green")
    ui.out.print(f"[{style}]{line}[/]", soft_wrap=True)
    return code


def run_env(args, ui):
    shell = args.shell or shellenv.detect_shell()
    flags = (f" --shell {args.shell}" if args.shell else "") + (" --unset" if args.unset else "")
    if args.unset:
        settings = shellenv.unset_settings()
    else:
        host, tls, why = shellenv.choose()
        settings = shellenv.settings_for(host, tls, dict(os.environ))
        ui.err.print(f"# {escape(shellenv.tcp_form(host))}: {escape(why)}", soft_wrap=True)
        bundles = shellenv.overriding_bundles(tls)
        if bundles:
            ui.err.print(
                f"# warning: {' and '.join(bundles)} {'are' if len(bundles) > 1 else 'is'} set: docker-py would verify the daemon against "
                f"that bundle instead of ca.pem; unset {'them' if len(bundles) > 1 else 'it'} for docker-py scripts",
                soft_wrap=True,
            )
    # The eval hint is in the output itself, as a comment (docker-machine's form): once.
    ui.out.file.write(shellenv.render(shell, settings, flags))
    ui.out.file.flush()
    return 0


def run_profile(args, ui):
    # What needs no Docker first: the path's form, and the snippet ddctl ships.
    profile.check_path(args.path)
    if args.apply:
        profile.snippet()
    client = make_client(timeout=30)
    try:
        if args.apply:
            state, lines, image = profile.apply(client, args.path, args.image)
            if state == "present":
                ui.out.print(f"{escape(args.path)} already waits for eth1: nothing changed.", soft_wrap=True)
            else:
                ui.out.print(
                    f"Appended the wait4eth1 snippet to {escape(args.path)} (its {lines} existing lines "
                    f"kept; ran in {escape(image)}).",
                    soft_wrap=True,
                )
                ui.out.print(f"Now {escape(profile.RESTART)}.", soft_wrap=True)
            return 0
        state = profile.inspect(client, args.path, args.image)
        if state == "present":
            ui.out.print(
                f"[green][✓][/] {escape(args.path)} waits for eth1 before making TLS certificates.",
                soft_wrap=True,
            )
            return 0
        what = "does not exist" if state == "missing" else "does not wait for eth1"
        ui.out.print(
            f"[yellow][!][/] {escape(args.path)} {what}: `ddctl doctor profile --apply` appends:",
            soft_wrap=True,
        )
        ui.out.file.write(profile.snippet() + "\n")
        return 1
    finally:
        client.close()
