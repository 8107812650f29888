"""The ``sacnn`` command: every subcommand reuses its module's parser and names itself."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sacnn import cli

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _console_script() -> Path:
    path = BIN / "sacnn"
    if not path.exists():
        pytest.fail(f"no console script {path}: install the package (pip install -e .) so "
                    "pyproject's [project.scripts] entry is generated")
    return path


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_help_names_itself(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sacnn {name} "), out[:200]


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_module_entry_point_names_its_python_m_line(name, capsys):
    """``python -m sacnn.<module> --help`` says so (not ``__main__.py``)."""
    cmd = cli.COMMANDS[name]
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(cmd.entry).main([*cmd.lead, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {cmd.equivalent} ")


def test_python_m_training_help_names_the_module():
    res = _run([sys.executable, "-m", "sacnn.training", "--help"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m sacnn.training "), res.stdout[:200]


def test_top_level_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sacnn <command>")
    for name, cmd in cli.COMMANDS.items():
        assert f"  {name}  " in out and cmd.summary in out, name


def test_readme_names_every_command():
    readme = (ROOT / "README.md").read_text()
    head = "## The `sacnn` command"
    assert head in readme, f"README.md: no section {head!r}"
    section = readme.split(head, 1)[1].split("\n## ", 1)[0]
    missing = [name for name in cli.COMMANDS if f"`{name}`" not in section]
    assert not missing, f"README's 'The sacnn command' section does not name {missing}"


def test_top_level_help_imports_no_science_code():
    code = ("import sys; from sacnn.cli import main; main(['--help']); "
            "heavy = sorted(m for m in ('torch', 'xarray', 'pandas', 'numpy') "
            "if m in sys.modules); print('heavy', heavy)")
    res = _run([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr
    assert "heavy []" in res.stdout, res.stdout[-300:]


def test_unknown_or_missing_command_fails_clearly(capsys):
    assert cli.main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert "sacnn: error: unknown command 'bogus'" in err
    assert "simulate" in err and "train" in err and "sacnn --help" in err
    assert cli.main(["--bogus"]) == 2
    assert "unknown option '--bogus'" in capsys.readouterr().err
    assert cli.main([]) == 2
    assert "a command is required" in capsys.readouterr().err


def test_a_subcommand_usage_error_names_the_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate"])  # its required options are missing
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sacnn evaluate ") and "required" in err


def test_version(capsys):
    import sacnn

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sacnn {sacnn.__version__}"


def test_pyproject_entry_point_resolves_to_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    target = scripts["sacnn"]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), target
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert installed.get("sacnn") == target, (
        f"installed console script 'sacnn' -> {installed.get('sacnn')!r}, pyproject says "
        f"{target!r}: reinstall (pip install -e .)")


def test_console_script_runs():
    script = _console_script()
    res = _run([str(script), "--help"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: sacnn <command>")
    res = _run([str(script), "bogus"])
    assert res.returncode == 2 and "unknown command 'bogus'" in res.stderr
    res = _run([sys.executable, "-m", "sacnn", "--help"])
    assert res.returncode == 0 and res.stdout.startswith("usage: sacnn <command>"), res.stderr


def test_sacnn_models_prints_what_python_m_prints():
    via_cli = _run([str(_console_script()), "models"])
    via_module = _run([sys.executable, "-m", "sacnn.models"])
    assert via_cli.returncode == 0 and via_module.returncode == 0, via_cli.stderr
    assert "ff-CNN" in via_module.stdout
    assert via_cli.stdout == via_module.stdout


def test_sacnn_simulate_writes_what_python_m_writes(tmp_path):
    opts = ["--site", "c", "--quiet", "-s", "n_neurons=3", "-s", "n_train=40", "-s", "n_val=8",
            "-s", "repeats=2"]
    a = _run([str(_console_script()), "simulate", str(tmp_path / "a"), *opts])
    b = _run([sys.executable, "-m", "sacnn.simulate", str(tmp_path / "b"), *opts])
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    compared = [n for n in names if n.endswith((".npy", ".yaml", ".json"))]
    assert len(compared) == 7, names  # four arrays, site.yaml, neurons and realism JSON
    for name in compared:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
