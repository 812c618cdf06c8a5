"""review_files: Terraform given as {path: content}, as the MCP server (and HTTP API) receive it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reviewtools import EXAMPLES

from opsmith import __version__
from opsmith.config import Settings
from opsmith.errors import InputError
from opsmith.review import review, review_files
from opsmith.review.inmemory import safe_relative_path
from opsmith.review.sarif import to_sarif

PUBLIC_BUCKET = 'resource "aws_s3_bucket" "assets" {\n  bucket = "acme-assets"\n  acl    = "public-read"\n}\n'


def test_same_findings_as_reviewing_the_folder(settings: Settings) -> None:
    folder = EXAMPLES / "vulnerable"
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.tf"))}
    from_memory = review_files(files, settings=settings, use_llm=False)
    from_disk = review([folder], settings=settings, use_llm=False)
    assert from_memory.to_dict() == from_disk.to_dict()
    assert from_memory.files == from_disk.files


def test_paths_are_kept_and_folders_are_modules(settings: Settings) -> None:
    files = {
        "net/main.tf": 'resource "aws_vpc" "main" {\n  cidr_block = "10.0.0.0/16"\n}\n',
        "net/subnets.tf": 'resource "aws_subnet" "a" {\n  vpc_id = aws_vpc.main.id\n  cidr_block = "10.0.1.0/24"\n}\n',
        "./app/s3.tf": PUBLIC_BUCKET,
        "notes.md": "ignored",
    }
    result = review_files(files, settings=settings, use_llm=False)
    assert sorted(result.files) == ["app/s3.tf", "net/main.tf", "net/subnets.tf"]
    # aws_vpc.main is declared in a sibling file: no "undeclared reference" finding.
    assert not [f for f in result.findings if f.rule == "OPS-C001"]
    assert any(f.rule == "OPS-S003" and f.file == "app/s3.tf" and f.line == 3 for f in result.findings)


def test_sarif_locations_use_the_given_paths(settings: Settings) -> None:
    result = review_files({"infra/s3.tf": PUBLIC_BUCKET}, settings=settings, use_llm=False)
    assert result.sources == {"infra/s3.tf": Path("infra/s3.tf")}
    text = json.dumps(to_sarif(result, version=__version__))
    assert "infra/s3.tf" in text
    assert "opsmith-review-" not in text


@pytest.mark.parametrize(
    ("name", "expected"),
    [("main.tf", "main.tf"), ("./a/b.tf", "a/b.tf"), ("a//b.tf", "a/b.tf"), ("a/./b.tf", "a/b.tf")],
)
def test_safe_relative_paths(name: str, expected: str) -> None:
    assert safe_relative_path(name) == expected


@pytest.mark.parametrize(
    "name", ["", ".", "/etc/main.tf", "../main.tf", "a/../../main.tf", "C:/infra/main.tf", "a\\b.tf", "a\x00.tf"]
)
def test_unsafe_paths_are_refused(name: str, settings: Settings) -> None:
    with pytest.raises(InputError) as caught:
        review_files({name: PUBLIC_BUCKET}, settings=settings, use_llm=False)
    assert "—" in str(caught.value)


def test_no_terraform_and_duplicates_are_input_errors(settings: Settings) -> None:
    with pytest.raises(InputError, match=r"No Terraform files \(.tf\) among the files given \(README.md\)"):
        review_files({"README.md": "# hi"}, settings=settings, use_llm=False)
    with pytest.raises(InputError, match="names the same file"):
        review_files({"main.tf": PUBLIC_BUCKET, "./main.tf": PUBLIC_BUCKET}, settings=settings, use_llm=False)
    with pytest.raises(InputError, match="both a file and a folder"):
        review_files({"a.tf": PUBLIC_BUCKET, "a.tf/b.tf": PUBLIC_BUCKET}, settings=settings, use_llm=False)
