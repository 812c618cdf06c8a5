"""Render a :class:`~opsmith.compare.run.CompareResult` as report.md, report.json,
a self-contained report.html (inline CSS, no external assets; the plot is embedded) and scores.png."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsmith.compare.run import CompareResult

COLUMNS = (
    ("score", "score"),
    ("exact_match", "EM"),
    ("token_f1", "F1"),
    ("must_include", "must_include"),
    ("schema_valid", "schema"),
    ("refusal_correct", "refusal"),
    ("recall@k", "recall@k"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("input_tokens", "tok in"),
    ("output_tokens", "tok out"),
    ("cost_per_1k_usd", "$/1k q"),
)
_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.demo{background:#fff3cd;padding:.5em 1em;border:1px solid #e0c060}"
    "img{max-width:100%}"
)


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table_rows(result: CompareResult) -> list[list[str]]:
    return [[name, *(cell(m.get(key)) for key, _ in COLUMNS)] for name, m in result.variants.items()]


def recommendation_lines(result: CompareResult) -> list[str]:
    rec = result.recommendation or {}
    lines = [
        f"Recommendation: {rec.get('primary')}" + (f" (also: {', '.join(rec['also'])})" if rec.get("also") else "")
    ]
    for step in rec.get("path", []):
        lines.append(f"- {step.get('question')} → {step.get('answer')}: {step.get('reason')}")
    return lines


def _label(result: CompareResult) -> str:
    return (
        "DEMONSTRATION — demo (fake provider): scores show the harness working, not a real model.\n\n"
        if result.demo
        else ""
    )


def markdown(result: CompareResult) -> str:
    head = ["variant", *(label for _, label in COLUMNS)]
    lines = ["# opsmith compare", "", _label(result).strip(), ""] if result.demo else ["# opsmith compare", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "## Significance (paired bootstrap, 2,000 resamples, 95% CI)", ""]
    lines += [f"- {_describe(c)}" for c in result.comparisons]
    d = result.diagnosis
    lines += ["", "## Diagnosis", "", f"Over {d['answerable']} answerable items:"]
    lines += [f"- {kind}: {d['counts'][kind]} ({d['shares'][kind]:.0%})" for kind in d["counts"]]
    lines += ["", "## Recommendation", "", *recommendation_lines(result)]
    if result.forgetting:
        f = result.forgetting
        lines += [
            "",
            "## Forgetting check",
            "",
            f"General set ({f['items']} items): base {f['base_score']:.3f}, "
            f"fine-tuned {f['finetuned_score']:.3f}, regression {f['regression']:+.3f} — {_describe(f['comparison'])}",
        ]
    lines += ["", "## Notes", "", *(f"- {n}" for n in result.notes), ""]
    return "\n".join(lines)


def _describe(c: dict[str, Any]) -> str:
    verdict = "significant" if c["significant"] else "not significant"
    return f"{c['b']} − {c['a']}: {c['diff']:+.3f} (95% CI {c['ci_low']:+.3f} … {c['ci_high']:+.3f}), {verdict}"


def html_page(result: CompareResult, png: bytes | None) -> str:
    e = html.escape
    head = "".join(f"<th>{e(label)}</th>" for label in ["variant", *(lbl for _, lbl in COLUMNS)])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table_rows(result))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>opsmith compare</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>opsmith compare</h1>",
        f"<p class='demo'>{e(_label(result).strip())}</p>" if result.demo else "",
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        "<h2>Significance</h2><ul>" + "".join(f"<li>{e(_describe(c))}</li>" for c in result.comparisons) + "</ul>",
        "<h2>Recommendation</h2>" + "".join(f"<p>{e(line)}</p>" for line in recommendation_lines(result)),
    ]
    if png:
        parts.append(
            f"<img alt='quality vs cost and latency' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in result.notes) + "</ul></body></html>")
    return "".join(parts)


def plot(result: CompareResult, path: Path) -> Path:
    """Quality against cost per 1k queries and against p50 latency, one point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for name, m in result.variants.items():
        score = m["score"] or 0.0
        left.scatter([m["cost_per_1k_usd"] or 0.0], [score])
        left.annotate(name, (m["cost_per_1k_usd"] or 0.0, score), fontsize=8)
        right.scatter([m["latency_p50_ms"] or 0.0], [score])
        right.annotate(name, (m["latency_p50_ms"] or 0.0, score), fontsize=8)
    left.set(xlabel="cost per 1k queries (USD; unknown = 0)", ylabel="task score", ylim=(-0.05, 1.05))
    right.set(xlabel="latency p50 (ms)", ylim=(-0.05, 1.05))
    if result.demo:
        fig.suptitle("DEMONSTRATION: demo (fake provider)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_report(result: CompareResult, folder: Path) -> dict[str, Path]:
    """Write report.md, report.json, report.html and scores.png into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("report.md", "report.json", "report.html", "scores.png")}
    plot(result, paths["scores.png"])
    paths["report.md"].write_text(markdown(result), encoding="utf-8")
    paths["report.json"].write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    paths["report.html"].write_text(html_page(result, paths["scores.png"].read_bytes()), encoding="utf-8")
    return paths
