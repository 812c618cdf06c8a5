"""The ``opsmith-review`` pre-commit hook, run by the real ``pre-commit`` tool.

A temporary git repository's ``.pre-commit-config.yaml`` names this repository as the hook
source (``repo:`` a local path, ``rev:`` a commit), exactly as a user's names the GitHub URL.
pre-commit clones it, reads ``.pre-commit-hooks.yaml``, builds the hook's virtualenv and
``pip install``\\s opsmith into it, then runs the hook on the staged ``.tf`` files.

Two shortcuts keep this at a few seconds instead of minutes and gigabytes:

* The hook source is a throwaway commit of this working tree's packaging files (tracked or
  not, ignored ones left out), because pre-commit clones a *commit* and the tree under test
  may not be committed yet.
* ``pip install`` runs with ``--no-deps`` (``PIP_NO_DEPS``) and the hook finds opsmith's
  dependencies on ``PYTHONPATH``, from the interpreter running the tests; otherwise pip would
  download torch and the rest of the full install. opsmith itself is imported from the hook's
  own virtualenv, which the tests check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pre_commit")
# Every test runs the real pre-commit, which builds the hook's virtualenv once for the module.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: What `pip install .` of the hook source needs.
PACKAGING = [".pre-commit-hooks.yaml", "pyproject.toml", "README.md", "src"]

PUBLIC_BUCKET = """\
resource "aws_s3_bucket" "assets" {
  bucket = "acme-assets"
  acl    = "public-read"
}
"""
#: Three warnings (no public access block, no encryption, no access logs), nothing critical.
PLAIN_BUCKET = """\
resource "aws_s3_bucket" "assets" {
  bucket = "acme-assets"
}
"""
CLEAN_QUEUE = """\
resource "aws_sqs_queue" "jobs" {
  name              = "jobs"
  kms_master_key_id = "alias/aws/sqs"
}
"""


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=opsmith tests", "-c", "user.email=tests@example.invalid", *args],
        cwd=cwd,
        env=_git_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _git_env() -> dict[str, str]:
    # The developer's own git config (hooks, templates, signing) must not leak in.
    return {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(scope="module")
def hook_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(path, commit) of a repository holding this working tree's hook and package."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of opsmith")
    listed = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *PACKAGING)
    source = tmp_path_factory.mktemp("hook-source")
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _git(source, "init", "--quiet")
    _git(source, "add", "--all")
    _git(source, "commit", "--quiet", "--message", "hook source")
    return source, _git(source, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook virtualenv for the module: pre-commit builds it on the first run and reuses it."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "infra-repo"
    folder.mkdir()
    _git(folder, "init", "--quiet")
    return folder


def _configure(project: Path, hook_source: tuple[Path, str], args: list[str] | None = None) -> None:
    path, rev = hook_source
    hook: dict[str, object] = {
        "id": "opsmith-review",
        # The version running the tests, so the dependencies on PYTHONPATH match its ABI.
        "language_version": f"python{sys.version_info.major}.{sys.version_info.minor}",
    }
    if args is not None:
        hook["args"] = args
    config = {"repos": [{"repo": str(path), "rev": rev, "hooks": [hook]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    _git(project, "add", ".pre-commit-config.yaml")


def _stage(project: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
        _git(project, "add", name)


def _pre_commit(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **_git_env(),
        "PRE_COMMIT_HOME": str(home),
        "PIP_NO_DEPS": "1",
        # pip's inverted switch: "0" turns build isolation off, so setuptools comes from the
        # hook virtualenv instead of an index.
        "PIP_NO_BUILD_ISOLATION": "0",
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "OPSMITH_PROVIDER": "none",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--color", "never"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_hook_fails_on_a_critical_finding_in_a_staged_file(
    project: Path, hook_source: tuple[Path, str], pre_commit_home: Path
) -> None:
    _configure(project, hook_source)
    _stage(project, {"s3.tf": PUBLIC_BUCKET, "modules/queue/main.tf": CLEAN_QUEUE})
    run = _pre_commit(project, pre_commit_home)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "opsmith review (Terraform)" in run.stdout
    assert "Failed" in run.stdout
    assert "OPS-S003" in run.stdout  # the public-read ACL
    # opsmith ran from the hook's own virtualenv, installed from the hook source.
    installed = list(pre_commit_home.glob("repo*/py_env-*/lib/python*/site-packages/opsmith/__init__.py"))
    assert len(installed) == 1


def test_hook_passes_on_clean_and_warning_only_files(
    project: Path, hook_source: tuple[Path, str], pre_commit_home: Path
) -> None:
    _configure(project, hook_source)
    _stage(project, {"queue.tf": CLEAN_QUEUE, "bucket.tf": PLAIN_BUCKET})
    run = _pre_commit(project, pre_commit_home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "opsmith review (Terraform)" in run.stdout
    assert "Passed" in run.stdout


def test_args_make_warnings_fail(project: Path, hook_source: tuple[Path, str], pre_commit_home: Path) -> None:
    _configure(project, hook_source, args=["--fail-on", "warning"])
    _stage(project, {"bucket.tf": PLAIN_BUCKET})
    run = _pre_commit(project, pre_commit_home)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "OPS-S004" in run.stdout


def test_only_staged_terraform_is_reviewed(project: Path, hook_source: tuple[Path, str], pre_commit_home: Path) -> None:
    _configure(project, hook_source)
    _stage(project, {"notes.md": "# not terraform\n"})
    (project / "unstaged.tf").write_text(PUBLIC_BUCKET, encoding="utf-8")
    run = _pre_commit(project, pre_commit_home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(no files to check)" in run.stdout


def test_hook_manifest() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "opsmith-review"
    assert hook["entry"] == "opsmith review --no-llm --fail-on critical"
    assert (hook["language"], hook["files"], hook["pass_filenames"]) == ("python", r"\.tf$", True)
