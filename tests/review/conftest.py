"""Fixtures for the review tests: settings, and reviewing Terraform given as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reviewtools import write_tf

from opsmith.config import Settings, load_settings
from opsmith.review import ReviewResult, review


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def review_tf(tmp_path: Path, settings: Settings) -> Callable[..., ReviewResult]:
    """Review Terraform given as text: ``review_tf("resource ...")`` or ``review_tf({"a.tf": ...})``."""
    counter = iter(range(1000))

    def run(files: str | dict[str, str]) -> ReviewResult:
        folder = tmp_path / f"module{next(counter)}"
        write_tf(folder, {"main.tf": files} if isinstance(files, str) else files)
        return review([folder], settings=settings, use_llm=False)

    return run
