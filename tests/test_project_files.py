"""What every project has, and that it stays consistent: the license in the package metadata
and the image, a changelog entry for the version, the README's list of test prerequisites."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_apache_2_in_the_file_and_the_metadata():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_image_build_gets_the_license_file():
    """pyproject's license-files must exist where the image runs `pip install .`."""
    copies = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY pyproject.toml")]
    assert copies and "LICENSE" in copies[0].split()


def test_the_changelog_has_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    version = PYPROJECT["project"]["version"]
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), version
    assert "## [Unreleased]" in changelog


def test_ci_installs_every_debian_prerequisite_the_readme_and_the_check_name():
    from tests.prerequisites import PREREQUISITES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for prerequisite in PREREQUISITES:
        package = prerequisite.install.split("apt-get install ")[1].split()[0]
        assert f"`apt-get install {package}`" in readme, package
        assert f"missing+=({package})" in ci, package
