"""Terraform review: deterministic rules offline, plus an LLM reviewer when one is configured.

::

    from opsmith.config import load_settings
    from opsmith.review import review

    result = review(["infra/"], settings=load_settings(), use_llm=False)
    print(result.to_dict())          # {"security": [...], "cost": [...], "correctness": [...]}
    raise SystemExit(result.exit_code("critical"))

In-memory files (``{path: content}``, as the MCP server receives them) go through
:func:`review_files`. See :func:`review`, :class:`ReviewResult` and :class:`Finding`; the rules live in
:mod:`opsmith.review.rules`, SARIF output in :mod:`opsmith.review.sarif`.
"""

from opsmith.review.findings import CATEGORIES, Finding, LlmReport, ReviewResult, Skipped
from opsmith.review.inmemory import review_files
from opsmith.review.runner import review

__all__ = ["CATEGORIES", "Finding", "LlmReport", "ReviewResult", "Skipped", "review", "review_files"]
