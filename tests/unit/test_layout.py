"""The house rules of ddctl/ that a reviewer would otherwise check by hand (README "How it
is built"): each shared fact has one owner, commands do not lean on each other."""

import ast
import os
import re

from ddctl.image import BVLC_GOOGLENET_SHA1, DEFAULT_TAG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sources(folder):
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, folder)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    yield os.path.relpath(path, ROOT), fh.read()


def imported_modules(text):
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_no_command_module_imports_another():
    commands = {
        name[:-3] for name in os.listdir(os.path.join(ROOT, "ddctl", "commands")) if name.endswith(".py")
    }
    others = {f"ddctl.commands.{c}" for c in commands - {"__init__", "common"}}
    for path, text in sources("ddctl/commands"):
        own = "ddctl.commands." + os.path.basename(path)[:-3]
        assert not (set(imported_modules(text)) & others) - {own}, path


def test_only_image_py_spells_the_default_tag_and_the_weights_sha1():
    for path, text in sources("ddctl"):
        if path != os.path.join("ddctl", "image.py"):
            assert DEFAULT_TAG not in text and BVLC_GOOGLENET_SHA1 not in text, path


def test_every_container_is_created_through_containers_py():
    for path, text in sources("ddctl"):
        if path != os.path.join("ddctl", "containers.py"):
            assert not re.search(r"\w\.containers\.(create|run)\(", text), path


def test_ddctl_and_the_engine_never_import_each_other():
    for path, text in sources("ddctl"):
        assert not any(m == "engine" or m.startswith("engine.") for m in imported_modules(text)), path
    for path, text in sources("engine"):
        assert not any(m == "ddctl" or m.startswith("ddctl.") for m in imported_modules(text)), path
