"""`vlagent ui` and `vlagent serve api` on bad input: one line and exit code 2, before any model loads."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vlagent.cli.app import app


def test_ui_refuses_malformed_basic_auth(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ui", "--auth", "no-colon-here"], env={"VLAGENT_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "USER:PASSWORD" in result.output and "Traceback" not in result.output


def test_serve_api_names_a_missing_catalogue(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(app, ["serve", "api", "--images", str(missing)], env={"VLAGENT_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "nowhere: no such image folder or zip file" in " ".join(result.output.split())
