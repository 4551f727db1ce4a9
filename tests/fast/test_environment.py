"""The pins live in requirements.txt; environment.yml must mirror them exactly."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$")


def requirement_pins() -> dict:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(PIN.match(line.strip()).groups() for line in lines if line.strip() and not line.startswith("#"))


def conda_pip_pins() -> dict:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    return dict(PIN.match(line).groups() for line in pip_section)


def test_every_requirement_is_pinned_exactly():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    loose = [line for line in lines if line and not line.startswith("#") and not PIN.match(line)]
    assert loose == []


def test_environment_yml_mirrors_requirements():
    assert conda_pip_pins() == requirement_pins()


def test_environment_yml_python_matches_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert 'requires-python = ">=3.11,<3.12"' in (ROOT / "pyproject.toml").read_text()
