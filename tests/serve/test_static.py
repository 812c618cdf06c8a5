"""The web UI's files: the vendored Markdown renderer and sanitiser are served, packaged and what
their README says they are, and nothing is loaded from another origin."""

from __future__ import annotations

import glob
import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from fastapi import FastAPI
from servetools import REPO, api_client

from opsmith.serve.routes.ui import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"
#: The vendored scripts and the banner each carries, as "name version".
VENDORED = {"markdown-it.esm.min.js": "markdown-it", "purify.es.js": "DOMPurify"}


@pytest.mark.anyio
async def test_the_vendored_libraries_are_served_as_javascript_under_the_page_policy(app: FastAPI) -> None:
    async with api_client(app) as client:
        paths = ["/static/markdown.js", *(f"/static/vendor/{name}" for name in VENDORED)]
        responses = {path: await client.get(path) for path in paths}
    for path, response in responses.items():
        assert response.status_code == 200, path
        # Module scripts must arrive as JavaScript: the page is served with nosniff.
        assert response.headers["content-type"].startswith("text/javascript"), path
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_the_vendor_readme_names_the_versions_and_checksums_of_the_files() -> None:
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    for name, package in VENDORED.items():
        data = (VENDOR / name).read_bytes()
        listed = re.search(rf"^\| `{re.escape(name)}` \| \[{package}\]\([^)]*\) (\S+) \|", readme, flags=re.M)
        assert listed, name
        assert f"{package} {listed[1]}".encode() in data[:300], f"{name} is not {package} {listed[1]}"
        assert f"{hashlib.sha256(data).hexdigest()}  {name}" in readme
    for licence in re.findall(r"`([\w.-]+\.LICENSE(?:-MPL)?)`", readme):
        assert (VENDOR / licence).is_file(), licence


def test_every_static_file_is_in_the_package_data() -> None:
    # The globs setuptools expands for the wheel: a new folder under static/ needs its own.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package = STATIC_DIR.parents[1]
    packaged = {
        Path(match)
        for pattern in pyproject["tool"]["setuptools"]["package-data"]["opsmith"]
        for match in glob.glob(pattern, root_dir=package, recursive=True)
    }
    files = {path.relative_to(package) for path in STATIC_DIR.rglob("*") if path.is_file()}
    assert {Path("serve/static/vendor/purify.es.js"), Path("serve/static/markdown.js")} <= files
    assert files - packaged == set()


def test_the_pages_load_nothing_from_another_origin() -> None:
    for path in [*STATIC_DIR.glob("*.html"), *STATIC_DIR.glob("*.js")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", text), path.name
        assert not re.search(r"""(?:import|from)\s*\(?\s*["'](?:https?:)?//""", text), path.name
