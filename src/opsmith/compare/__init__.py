"""``opsmith compare``: prompt vs RAG vs fine-tuned, measured on your own eval set.

:func:`build_variants` makes each :class:`Variant` over the models a provider gives;
:func:`compare` runs each variant on each :class:`EvalItem`, caches every result in a
:class:`ResultCache`, scores the replies (:mod:`~opsmith.compare.metrics`), compares variants
with paired bootstrap CIs (:mod:`~opsmith.compare.stats`), diagnoses each item and asks
``opsmith.advise`` for a recommendation (:mod:`~opsmith.compare.diagnosis`). :func:`write_report`
renders the result as Markdown, JSON, self-contained HTML and a PNG.
"""

from opsmith.compare.cache import ResultCache, config_hash
from opsmith.compare.evalset import EvalItem, load_evalset
from opsmith.compare.report import write_report
from opsmith.compare.run import CompareResult, compare
from opsmith.compare.stats import Comparison, paired_bootstrap
from opsmith.compare.variants import VARIANTS, Variant, build_variants, demo_model

__all__ = [
    "VARIANTS",
    "CompareResult",
    "Comparison",
    "EvalItem",
    "ResultCache",
    "Variant",
    "build_variants",
    "compare",
    "config_hash",
    "demo_model",
    "load_evalset",
    "paired_bootstrap",
    "write_report",
]
