"""Review Terraform held in memory (``{path: content}``), as the MCP server and HTTP API receive it."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from opsmith.errors import InputError
from opsmith.review.findings import ReviewResult
from opsmith.review.runner import review

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm import ChatModel

__all__ = ["review_files", "safe_relative_path"]


def safe_relative_path(name: str) -> str:
    """``name`` as a clean relative POSIX path, or :class:`InputError` when it could leave its folder.

    Absolute paths (``/x``, ``C:\\x``, ``\\\\host\\x``), ``..`` components, backslashes and NUL
    bytes are refused rather than cleaned up, so the name a finding reports is the name given.
    """
    if not name or "\x00" in name or "\\" in name:
        raise InputError(f"Unsafe file path {name!r} — use a relative path with forward slashes, e.g. infra/main.tf")
    posix = PurePosixPath(name)
    if posix.is_absolute() or PureWindowsPath(name).drive:
        raise InputError(f"Absolute file path {name!r} — give paths relative to the module folder, e.g. main.tf")
    if ".." in posix.parts:
        raise InputError(f"File path {name!r} leaves its folder ('..') — give paths inside the module folder")
    cleaned = posix.as_posix()
    if cleaned in {"", "."}:
        raise InputError(f"Unsafe file path {name!r} — name a file, e.g. main.tf")
    return cleaned


def review_files(
    files: Mapping[str, str],
    *,
    settings: Settings,
    chat_model: ChatModel | None = None,
    use_llm: bool = True,
) -> ReviewResult:
    """Review Terraform given as ``{relative path: content}`` instead of files on disk.

    The files are written into a private temporary folder, laid out as given, and reviewed
    with :func:`~opsmith.review.review` as one tree, so findings name each file by the path
    given (``net/main.tf``) and files in one folder see each other's declarations. Files
    whose names do not end in ``.tf`` are ignored, as in a folder review.

    Args:
        files: Relative POSIX paths to file contents. Absolute paths, ``..`` and
            backslashes are refused.
        settings: As for :func:`~opsmith.review.review`.
        chat_model: The LLM; None reviews with the rules only.
        use_llm: False skips the LLM even when a model is given.

    Returns:
        The :class:`ReviewResult`; its ``sources`` hold the relative paths given.

    Raises:
        InputError: an unsafe path, two paths naming the same file, or no ``.tf`` file.
    """
    cleaned: dict[str, str] = {}
    for name, content in files.items():
        path = safe_relative_path(name)
        if path in cleaned:
            raise InputError(f"File path {name!r} names the same file as another entry — give each file once")
        cleaned[path] = content
    if not any(path.endswith(".tf") for path in cleaned):
        given = ", ".join(sorted(cleaned)[:5]) or "none"
        raise InputError(
            f"No Terraform files (.tf) among the files given ({given}) — pass files whose names end in .tf"
        )
    with tempfile.TemporaryDirectory(prefix="opsmith-review-") as tmp:
        root = Path(tmp)
        for path, content in cleaned.items():
            target = root / path
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            except OSError as exc:  # "a.tf" and "a.tf/b.tf" given together, say
                reason = exc.strerror or exc
                raise InputError(
                    f"Cannot lay out file {path!r} ({reason}) — check that no path is both a file and a folder"
                ) from exc
        result = review([root], settings=settings, chat_model=chat_model, use_llm=use_llm)
    # The temporary copies are gone: point SARIF locations at the paths as given.
    result.sources = {name: Path(name) for name in result.sources}
    return result
