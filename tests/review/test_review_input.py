"""Bad input: empty folders, other files, syntax errors, huge files, binary junk, odd paths."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reviewtools import hits, write_tf

from opsmith.config import Settings, load_settings
from opsmith.errors import InputError, PathNotFoundError
from opsmith.review import review

GOOD = 'resource "aws_sqs_queue" "jobs" {\n  name = "jobs"\n}\n'


def test_empty_folder_is_an_input_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputError) as caught:
        review([tmp_path], settings=settings)
    message = str(caught.value)
    assert "No Terraform files (.tf) found" in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_folder_with_only_other_files_says_how_many_were_ignored(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path, {"README.md": "# infra\n", "vars.tfvars": 'region = "x"\n', "main.tf.json": "{}"})
    with pytest.raises(InputError, match=r"\(3 other files ignored\)"):
        review([tmp_path], settings=settings)


def test_missing_path(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(PathNotFoundError):
        review([tmp_path / "nope"], settings=settings)


def test_non_tf_files_beside_tf_files_are_ignored(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path, {"main.tf": GOOD, "notes.md": "hello", "terraform.tfvars": 'a = "b"\n'})
    result = review([tmp_path], settings=settings)
    assert result.files == ["main.tf"]


def test_explicit_non_tf_file_is_skipped_with_a_reason(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path, {"main.tf": GOOD, "notes.md": "hello"})
    result = review([tmp_path / "main.tf", tmp_path / "notes.md"], settings=settings)
    assert result.files == ["main.tf"]
    assert [(s.path.endswith("notes.md"), s.reason) for s in result.skipped] == [(True, "not a .tf file")]


def test_syntax_error_is_a_finding_and_other_files_are_still_reviewed(tmp_path: Path, settings: Settings) -> None:
    write_tf(
        tmp_path,
        {
            "broken.tf": 'resource "aws_sqs_queue" "q" {\n  name =\n}\n',
            "s3.tf": 'resource "aws_s3_bucket" "b" {\n  bucket = "x"\n  acl    = "public-read"\n}\n',
        },
    )
    result = review([tmp_path], settings=settings)
    [syntax] = hits(result, "OPS-C000")
    assert (syntax.file, syntax.line, syntax.severity, syntax.category) == ("broken.tf", 2, "critical", "correctness")
    assert syntax.resource is None
    assert [(f.file, f.line) for f in hits(result, "OPS-S003")] == [("s3.tf", 3)]


def test_binary_junk_with_tf_suffix_is_a_finding_not_a_traceback(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "junk.tf").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "latin1.tf").write_bytes('# caf\xe9\nresource "a_b" "c" {}\n'.encode("latin-1"))
    write_tf(tmp_path, {"main.tf": GOOD})
    result = review([tmp_path], settings=settings)
    problems = {f.file: f for f in hits(result, "OPS-C000")}
    assert set(problems) == {"junk.tf", "latin1.tf"}
    assert "binary" in problems["junk.tf"].issue
    assert "UTF-8" in problems["latin1.tf"].issue
    assert problems["latin1.tf"].line == 1
    assert "main.tf" in result.files


def test_file_over_the_size_limit_is_skipped(tmp_path: Path) -> None:
    write_tf(tmp_path, {"main.tf": GOOD, "big.tf": GOOD * 50})
    settings = load_settings(max_file_bytes=1000)
    result = review([tmp_path], settings=settings)
    assert result.files == ["main.tf"]
    assert result.skipped[0].path == "big.tf"
    assert "OPSMITH_MAX_FILE_BYTES" in result.skipped[0].reason


@pytest.mark.slow  # parses and reviews 2,000 resources
def test_huge_file_of_2000_resources_is_reviewed(tmp_path: Path, settings: Settings) -> None:
    blocks = [
        f'resource "aws_s3_bucket" "b{i}" {{\n  bucket = "acme-{i}"\n  acl    = "public-read"\n}}\n'
        for i in range(2000)
    ]
    (tmp_path / "huge.tf").write_text("".join(blocks))
    start = time.perf_counter()
    result = review([tmp_path], settings=settings)
    assert time.perf_counter() - start < 15
    public = hits(result, "OPS-S003")
    assert len(public) == 2000
    assert (public[-1].line, public[-1].resource) == (4 * 1999 + 3, "aws_s3_bucket.b1999")


def test_dot_folders_are_not_reviewed(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path, {"main.tf": GOOD, ".terraform/modules/x/main.tf": 'resource "aws_s3_bucket" "b" {}\n'})
    assert review([tmp_path], settings=settings).files == ["main.tf"]


def test_files_are_named_relative_to_the_path_given(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path / "infra", {"main.tf": GOOD, "modules/db/main.tf": GOOD})
    result = review([tmp_path / "infra"], settings=settings)
    assert result.files == ["main.tf", "modules/db/main.tf"]


def test_same_name_under_two_paths_falls_back_to_the_path_as_given(tmp_path: Path, settings: Settings) -> None:
    write_tf(tmp_path / "a", {"main.tf": GOOD})
    write_tf(tmp_path / "b", {"main.tf": GOOD})
    result = review([tmp_path / "a", tmp_path / "b"], settings=settings)
    assert result.files == [(tmp_path / "a" / "main.tf").as_posix(), (tmp_path / "b" / "main.tf").as_posix()]


def test_a_single_file_sees_declarations_in_its_siblings(tmp_path: Path, settings: Settings) -> None:
    write_tf(
        tmp_path,
        {
            "variables.tf": 'variable "name" {\n  type = string\n}\n',
            "main.tf": 'resource "aws_sqs_queue" "q" {\n  name = var.name\n}\n',
        },
    )
    result = review([tmp_path / "main.tf"], settings=settings)
    assert result.files == ["main.tf"]
    assert hits(result, "OPS-C001") == []


def test_modules_in_different_folders_do_not_share_names(tmp_path: Path, settings: Settings) -> None:
    write_tf(
        tmp_path,
        {
            "root/variables.tf": 'variable "name" {\n  type = string\n}\n',
            "child/main.tf": 'resource "aws_sqs_queue" "q" {\n  name = var.name\n}\n',
        },
    )
    result = review([tmp_path], settings=settings)
    assert [(f.file, f.line) for f in hits(result, "OPS-C001")] == [("child/main.tf", 2)]


def test_a_rule_that_crashes_becomes_a_warning(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsmith.review.rules import RULES, Rule

    def broken(module: object) -> list[object]:
        raise KeyError("surprise")

    crashing = Rule("OPS-C999", "correctness", "warning", "t", "f", ("x",), (), broken)  # type: ignore[arg-type]
    monkeypatch.setitem(RULES, "OPS-C999", crashing)
    write_tf(tmp_path, {"main.tf": 'resource "aws_s3_bucket" "b" {\n  acl = "public-read"\n}\n'})
    result = review([tmp_path], settings=settings)
    assert hits(result, "OPS-S003")
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("rule OPS-C999 failed on ")


def test_a_file_nested_800_deep_is_a_finding_and_the_rest_is_reviewed(tmp_path: Path, settings: Settings) -> None:
    deep = "locals {\n  x = " + "[" * 800 + "]" * 800 + '\n  db_password = "Sup3r-s3cret"\n}\n'
    write_tf(tmp_path, {"deep.tf": deep, "s3.tf": 'resource "aws_s3_bucket" "b" {\n  acl = "public-read"\n}\n'})
    result = review([tmp_path], settings=settings)
    [problem] = hits(result, "OPS-C000")
    assert (problem.file, problem.line) == ("deep.tf", 2)
    assert "Nested too deeply" in problem.issue
    # The secret rule reads the text, so it still covers a file the parser gave up on.
    assert [(f.file, f.line) for f in hits(result, "OPS-S013")] == [("deep.tf", 3)]
    assert [(f.file, f.line) for f in hits(result, "OPS-S003")] == [("s3.tf", 2)]
    assert result.warnings == []


def test_json_nested_past_what_json_decodes_is_not_a_rule_failure(tmp_path: Path, settings: Settings) -> None:
    policy = '{"Statement": ' + "[" * 5000 + "]" * 5000 + "}"
    write_tf(tmp_path, {"iam.tf": f'resource "aws_iam_policy" "p" {{\n  policy = <<EOF\n{policy}\nEOF\n}}\n'})
    result = review([tmp_path], settings=settings)
    assert result.warnings == []


@pytest.fixture
def deep_folder(tmp_path: Path) -> Iterator[Path]:
    """``infra/`` with ``main.tf`` 1,000 folders down, removed bottom-up afterwards.

    The tree is built and removed one level at a time: ``os.makedirs`` and ``shutil.rmtree``
    (which pytest uses to clean up old temporary folders) recurse once per level themselves.
    """
    folder = tmp_path / "infra"
    chain = [folder]
    folder.mkdir()
    for _ in range(1000):
        chain.append(chain[-1] / "d")
        chain[-1].mkdir()
    (chain[-1] / "main.tf").write_text(GOOD)
    try:
        yield folder
    finally:
        for level in reversed(chain):
            for entry in level.iterdir():
                if not entry.is_dir() or entry.is_symlink():
                    entry.unlink()
                elif entry not in chain:
                    shutil.rmtree(entry)
            level.rmdir()


def test_folders_1000_levels_deep_are_walked(deep_folder: Path, settings: Settings) -> None:
    write_tf(deep_folder, {"main.tf": GOOD, "d/.terraform/x.tf": GOOD})
    result = review([deep_folder], settings=settings)
    assert result.files == ["d/" * 1000 + "main.tf", "main.tf"]
