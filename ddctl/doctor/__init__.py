"""`ddctl doctor`: small checks of the Docker environment, each returning a CheckResult.

checks.py holds one function per check, runner.py orders them and skips those whose
prerequisite failed, fixes.py holds what `--fix` may do, shellenv.py the `doctor env`
shell formats, profile.py the boot2docker profile repair, certs.py the pure
certificate checks. ddctl/commands/doctor.py only parses and renders.
"""
