"""What a pip user gets: the wheel's contents, the version from the package metadata,
`python -m easee_tail`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_data_completions_and_license(tmp_path: Path) -> None:
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=240,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("easee_tail-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("observations.tsv", "enums.json", "state_view.json", "sources.json",
                 "devices.json", "observations-equalizer.tsv"):
        assert f"easee_tail/data/{data}" in names
    assert "easee_tail/py.typed" in names
    assert "easee_tail/__main__.py" in names
    data_dir = next(name.split("/")[0] for name in names if ".data/" in name)
    for installed in ("share/bash-completion/completions/easee-tail.bash",
                      "share/zsh/site-functions/_easee-tail",
                      "share/fish/vendor_completions.d/easee-tail.fish"):
        assert f"{data_dir}/data/{installed}" in names
    [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(name.endswith("/LICENSE") for name in names if ".dist-info/" in name)


def test_version_comes_from_the_package_metadata(easee_tail: str) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("easee-tail") == declared
    printed = subprocess.run([easee_tail, "--version"], capture_output=True, text=True,
                             env=clean_env(), check=True).stdout
    assert printed == f"easee-tail, version {declared}\n"


def test_python_dash_m_runs_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "easee_tail", "observations", "109"],
                            capture_output=True, text=True, env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ChargerOpMode" in result.stdout
