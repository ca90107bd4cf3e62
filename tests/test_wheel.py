"""The package as users install it: ``pip install .`` builds a wheel (not an editable install).

The wheel is built from a copy of the checkout and installed, not editable, into a fresh venv
whose only other paths are the running interpreter's dependencies (never the project's source
or its editable finder). From there: every module of src/vlagent, tools/ and evals/ imports,
the prompts, the sample suites and py.typed are in the wheel and readable as package resources,
and every command of the ``vlagent`` CLI answers ``--help``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: the folders that install as vlagent's packages (as in pyproject's package-dir)
SOURCES = {"src/vlagent": "vlagent", "tools": "vlagent.tools", "evals": "vlagent.evals", "prompts": "vlagent.prompts"}
#: what the build reads besides the package folders (copied when present)
BUILD_FILES = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE", "LICENSE.txt")
#: new subpackages added to the copy only: discovery must ship them without a pyproject edit
PROBES = (("src/vlagent", "_wheel_probe"), ("src/vlagent", "agent/_wheel_probe"), ("tools", "_wheel_probe"), ("evals", "_wheel_probe"))
#: run through the installed console script itself (every command's --help runs in one process too)
SCRIPT_COMMANDS = ((), ("analyze",), ("finetune",))


def _wheel_name(folder: str, rel: Path) -> str:
    """The path inside the wheel of ``folder/rel`` from the source tree."""
    return "/".join([*SOURCES[folder].split("."), *rel.parts])


def source_modules() -> list[str]:
    """Every importable module of the source tree under its installed name (no ``__main__``)."""
    found = []
    for folder, package in SOURCES.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            if "__pycache__" in rel.parts or "suites" in rel.parts or rel.name == "__main__":
                continue
            found.append(".".join([package, *(p for p in rel.parts if p != "__init__")]))
    return found


def source_files(folder: str, patterns: tuple[str, ...]) -> dict[str, str]:
    """``{path in the wheel: path relative to the package}`` of the files ``patterns`` match."""
    base = ROOT / folder
    out = {}
    for pattern in patterns:
        for path in base.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(base)
                out[_wheel_name(folder, rel)] = rel.as_posix()
    return out


def data_files() -> dict[str, tuple[str, str]]:
    """The package data the wheel must carry: ``{path in the wheel: (package, resource)}``."""
    wanted = {
        "src/vlagent": ("py.typed",),
        "prompts": ("*.txt", "*.md"),
        "evals": ("suites/**/*",),
    }
    return {
        name: (SOURCES[folder], rel)
        for folder, patterns in wanted.items()
        for name, rel in source_files(folder, patterns).items()
    }


def _dependency_paths(work: Path) -> list[str]:
    """The running interpreter's import path minus the project's source and the stdlib.

    Written as plain lines into a .pth, these dirs are added as they are: the .pth files inside
    them (the editable install's finder among them) are not run, so vlagent can only come from
    the fresh venv's own site-packages, which precedes them."""
    code = "import json, sys; print(json.dumps(sys.path))"
    paths = json.loads(subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True).stdout)
    stdlib = Path(sys.base_prefix).resolve()
    root = ROOT.resolve()
    keep = []
    for entry in paths:
        if not entry or not Path(entry).is_dir():
            continue
        path = Path(entry).resolve()
        if path.name not in ("site-packages", "dist-packages"):
            if path == root or any(path == root / f or root / f in path.parents for f in [*SOURCES, "tests"]):
                continue  # the checkout itself (PYTHONPATH=src, a path-style editable install)
            if (path / "vlagent" / "__init__.py").is_file():
                continue  # another copy of the project's source
            if path == stdlib or stdlib in path.parents:
                continue  # the fresh venv has its own stdlib
        if str(path) not in keep:
            keep.append(str(path))
    return keep


CHECK = textwrap.dedent(
    """
    import importlib, json, sys, traceback
    from importlib import resources

    spec = json.loads(sys.argv[1])
    report = {"file": None, "failed": {}, "missing_dependency": {}, "resources_missing": [], "commands": [], "help_failed": {}}
    import vlagent
    report["file"] = vlagent.__file__
    for name in spec["modules"]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a third-party module: an optional extra not installed?
            top = (exc.name or "").split(".")[0]
            key = "failed" if top in ("", "vlagent") else "missing_dependency"
            report[key][name] = f"{type(exc).__name__}: {exc}"
        except BaseException as exc:
            report["failed"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    for package, rel in spec["resources"]:
        if not resources.files(package).joinpath(rel).is_file():
            report["resources_missing"].append(f"{package}:{rel}")

    import typer.main
    from typer.testing import CliRunner
    from vlagent.cli.app import app

    def walk(command, path=()):
        yield list(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    runner = CliRunner()
    for path in walk(typer.main.get_command(app)):
        report["commands"].append(path)
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0 or "Usage" not in result.output:
            report["help_failed"][" ".join(path) or "(root)"] = f"exit {result.exit_code}: {result.output[-2000:]}{result.exception!r}"
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-place build writes build/ and *.egg-info into the checkout, and a
    # stale build/lib there would ship modules that no longer exist.
    tree = tmp / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, tree / folder, ignore=ignore)
    for name in BUILD_FILES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, tree / name)
    for folder, probe in PROBES:
        (tree / folder / probe).mkdir()
        (tree / folder / probe / "__init__.py").write_text('"""A package the test adds: discovery must find it."""\n')

    dist = tmp / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(dist), str(tree)],
        cwd=tmp, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("vlagent-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_vlagent_test_deps.pth").write_text("\n".join(_dependency_paths(tmp)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    # --ignore-installed: the editable install's metadata is on the dependency path; pip must
    # neither skip the wheel for it nor try to uninstall it.
    install = subprocess.run(
        [python, "-I", "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--no-compile",
         "--disable-pip-version-check", "-q", str(wheel)],
        cwd=tmp, env=env, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    spec = {"modules": source_modules(), "resources": sorted(data_files().values())}
    check = subprocess.run([python, "-I", "-c", CHECK, json.dumps(spec)], cwd=tmp, env=env, capture_output=True, text=True)
    lines = [line for line in check.stdout.splitlines() if line.startswith("REPORT ")]
    assert check.returncode == 0 and lines, check.stdout[-4000:] + check.stderr[-4000:]
    return {
        "wheel": wheel,
        "names": zipfile.ZipFile(wheel).namelist(),
        "venv": venv,
        "site": site,
        "env": env,
        "cwd": tmp,
        "report": json.loads(lines[-1][len("REPORT "):]),
    }


def _lines(failures: dict[str, str]) -> str:
    return "\n".join(f"  {name}: {error}" for name, error in sorted(failures.items()))


def test_the_wheel_is_what_gets_imported(wheel_install: dict) -> None:
    file = Path(wheel_install["report"]["file"]).resolve()
    assert file == (wheel_install["site"] / "vlagent" / "__init__.py").resolve(), file


def test_the_wheel_holds_every_source_module_and_nothing_at_the_top_level(wheel_install: dict) -> None:
    names = set(wheel_install["names"])
    expected = {name for folder in SOURCES for name in source_files(folder, ("**/*.py",))}
    expected |= {_wheel_name(folder, Path(probe) / "__init__.py") for folder, probe in PROBES}
    assert sorted(expected - names) == [], "source modules missing from the wheel"
    assert sorted(n for n in names if n.endswith(".py") and n not in expected) == [], "wheel modules with no source"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"vlagent", wheel_install["wheel"].name.split("-py")[0] + ".dist-info"}, tops


def test_the_wheel_carries_prompts_suites_and_py_typed(wheel_install: dict) -> None:
    data = data_files()
    assert "vlagent/py.typed" in data
    assert "vlagent/prompts/classify.txt" in data
    assert "vlagent/evals/suites/sample/query.json" in data
    assert any(n.startswith("vlagent/evals/suites/sample/images/") for n in data)
    assert sorted(set(data) - set(wheel_install["names"])) == [], "package data missing from the wheel"
    assert wheel_install["report"]["resources_missing"] == []


def test_every_module_imports_from_the_wheel(wheel_install: dict) -> None:
    report = wheel_install["report"]
    missing = report["missing_dependency"]
    assert not missing, "modules that need a third-party package this environment lacks (an optional extra not installed?):\n" + _lines(missing)
    assert not report["failed"], "modules that do not import from the installed wheel:\n" + _lines(report["failed"])


def test_every_command_answers_help(wheel_install: dict) -> None:
    import typer.main

    from vlagent.cli.app import app

    def walk(command, path=()):
        yield list(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    report = wheel_install["report"]
    # the CLI skips a command whose vlagent module fails to import: compare with the source tree's
    assert sorted(report["commands"]) == sorted(walk(typer.main.get_command(app)))
    assert {("analyze",), ("finetune",)} <= {tuple(c) for c in report["commands"]}
    assert not report["help_failed"], "commands whose --help fails:\n" + _lines(report["help_failed"])


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=lambda c: " ".join(c) or "vlagent")
def test_the_console_script_answers_help(wheel_install: dict, command: tuple[str, ...]) -> None:
    script = wheel_install["venv"] / "bin" / "vlagent"
    assert str(wheel_install["venv"] / "bin" / "python") in script.read_text()  # the shebang (or its exec line)
    result = subprocess.run([str(script), *command, "--help"], cwd=wheel_install["cwd"], env=wheel_install["env"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage: vlagent" in result.stdout
