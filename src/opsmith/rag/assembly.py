"""What an answer is made of: the parts of the best runbook that answer the question.

Retrieval finds the runbook; this module chooses what of it to quote (the offline answer) or to
give the LLM (the context), each within a budget:

1. The best runbook, rebuilt from its chunks (:mod:`opsmith.rag.runbook`), has each section
   scored against the question: BM25 over the section's words with the collection's IDF (so the
   question's specific terms count most), plus the dense relevance of the retrieved chunks in it.
2. A runbook that fits the budget is used whole. Otherwise the best section grows to the largest
   section around it that fits; the smallest that does not is its *topic* (a "Symptoms"
   subsection's topic is its problem, with its "Investigation" and "Solution"). The rest of the
   topic comes next, then the rest of the runbook, best first; when the question asks what to
   do, sections that hold a command come before those that only describe. A section too long
   to fit whole gives its best blocks: a code block with the paragraph that introduces it.
3. The chosen blocks are quoted in document order, one excerpt per contiguous span, each with
   its exact source lines. The offline answer shortens sample output in code blocks (commands
   stay whole). The LLM context keeps room for the other runbooks' best parts.

:func:`commands` lists the commands of the quoted sections, each with its source line, and
:func:`not_covered` names the question's specific terms that no runbook mentions. Nothing here
knows a corpus: no heading names, no product words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from opsmith.rag.documents import SourceLine
from opsmith.rag.runbook import Block, Runbook, Section
from opsmith.rag.sparse import K1, STOPWORDS, B, term_id, tokenize
from opsmith.rag.store import Hit, TermStats

__all__ = [
    "ANSWER_CAP",
    "ANSWER_CHARS",
    "CODE_LINES",
    "COMMAND_PREVIEW",
    "ELISION",
    "MAX_COMMANDS",
    "OUTPUT_LINES",
    "Command",
    "Cost",
    "Excerpt",
    "Selection",
    "asks_for_action",
    "block_commands",
    "choose_sections",
    "commands",
    "compact",
    "context_excerpts",
    "extract_excerpts",
    "not_covered",
    "score_sections",
]

#: Characters of the offline answer at most, quotes, their headers and the Commands block together
#: (a code block longer than this alone is the exception).
ANSWER_CHARS = 2700
#: Characters of an offline answer at most, whatever it quotes (the Commands block gives way).
ANSWER_CAP = 4000
#: Characters of a command shown in the answer's Commands block (the quote holds it whole).
COMMAND_PREVIEW = 100
#: Commands listed at the end of an answer at most.
MAX_COMMANDS = 12

#: The size of a text in whatever the budget counts (characters, tokens).
Cost = Callable[[str], int]


@dataclass
class Excerpt:
    """A contiguous span of one runbook, quoted or given to the LLM as one numbered excerpt."""

    source: str
    heading: str
    start_line: int
    end_line: int
    text: str
    score: float = 0.0
    relevance: float = 0.0
    blocks: list[Block] = field(default_factory=list, repr=False)
    #: The commands of the sections this excerpt quotes (all of each section's, even of a part quoted).
    commands: list[tuple[str, int]] = field(default_factory=list, repr=False)


@dataclass
class Command:
    """A command from a quoted code block, with the source line it starts on."""

    text: str
    source: str
    line: int


# --- scoring ---------------------------------------------------------------------------------

_ACTION = re.compile(
    r"\b(how|what (?:should|do|can|must)|which (?:command|query|flag|setting)|fix|resolve|recover|restore|"
    r"check|debug|diagnos\w*|investigat\w*|troubleshoot\w*|find|see|stop|clear|remove|delete|restart|"
    r"run|command|steps?|mitigat\w*|workaround)\b",
    re.IGNORECASE,
)


def asks_for_action(question: str) -> bool:
    """Whether the question asks what to check or do (so sections with commands are preferred)."""
    return bool(_ACTION.search(question))


def score_sections(question: str, runbook: Runbook, stats: TermStats | None, hits: Sequence[Hit] = ()) -> list[float]:
    """Each section's relevance to ``question``, highest best.

    BM25 over the section's heading path and text, each question term weighted by its IDF in the
    collection (in the runbook's sections when there are no collection statistics), plus the
    dense relevance of retrieved chunks of this runbook that overlap the section, scaled so that
    neither signal alone decides.
    """
    asked = {term_id(t) for t in tokenize(question)}
    if not runbook.sections:
        return []
    documents = [_section_terms(section) for section in runbook.sections]
    lengths = [sum(doc.values()) for doc in documents]
    average = sum(lengths) / len(lengths) or 1.0
    if stats is not None and stats.chunks:
        weights = {term: stats.idf(term) for term in asked}
    else:
        n = len(documents)
        weights = {}
        for term in asked:
            df = sum(term in doc for doc in documents)
            weights[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    lexical = []
    for doc, length in zip(documents, lengths, strict=True):
        norm = K1 * (1 - B + B * length / average)
        lexical.append(sum(w * doc[t] * (K1 + 1) / (doc[t] + norm) for t, w in weights.items() if t in doc))
    dense = [0.0] * len(runbook.sections)
    for hit in hits:
        if hit.chunk.source != runbook.source:
            continue
        for i, section in enumerate(runbook.sections):
            if section.start_line <= hit.chunk.end_line and hit.chunk.start_line <= section.end_line:
                dense[i] = max(dense[i], hit.relevance)
    top_lexical, top_dense = max(lexical) or 1.0, max(dense) or 1.0
    return [lex / top_lexical + d / top_dense for lex, d in zip(lexical, dense, strict=True)]


def _section_terms(section: Section) -> dict[int, int]:
    return _term_counts(f"{section.heading}\n{section.text}")


# Runbooks repeat from question to question (the same few answer most alerts): count their terms once.
@lru_cache(maxsize=8192)
def _term_counts(text: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for term in tokenize(text):
        key = term_id(term)
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- choosing sections -----------------------------------------------------------------------


def _has_command(section: Section) -> bool:
    return any(block_commands(block) for block in section.blocks)


#: Which blocks of which sections are chosen: section index → block indices (sorted).
Selection = dict[int, list[int]]


def choose_sections(
    runbook: Runbook,
    scores: Sequence[float],
    *,
    budget: int,
    cost: Callable[[Block], int],
    act: bool,
    fill: float = 0.0,
    weigh: Callable[[Block], float] = lambda block: 0.0,
    section_cost: Callable[[Section], int] = lambda section: 0,
) -> Selection:
    """The sections (and, of a section too long to quote whole, the blocks) to quote.

    Args:
        runbook: the runbook.
        scores: :func:`score_sections` for it.
        budget: what the quote may cost (characters, tokens: whatever ``cost`` counts).
        cost: the cost of one block.
        act: the question asks what to do: prefer sections that hold a command.
        fill: after the best section's topic, add other sections scoring at least ``fill`` times
            the best, best first, while they fit (0: any section that matches at all).
        weigh: how well a block matches the question, to choose the blocks of a section that
            does not fit whole.
        section_cost: what choosing any of a section costs besides its blocks (its commands,
            which the answer lists whole even when it quotes part of the section).
    """
    sections = runbook.sections
    if not sections:
        return {}
    costs = [[cost(block) for block in section.blocks] for section in sections]
    extra = [section_cost(section) for section in sections]

    def total(picked: Selection) -> int:
        return sum(extra[i] + sum(costs[i][j] + 2 for j in blocks) for i, blocks in picked.items())

    whole = {i: list(range(len(s.blocks))) for i, s in enumerate(sections)}
    # A runbook that fits is quoted whole, whatever its sections add besides (a short runbook
    # read top to bottom beats any selection from it).
    if cost(Block("text", [SourceLine(0, runbook.text)])) <= budget:
        return whole
    best = max(range(len(sections)), key=lambda i: (scores[i], -i))
    # The largest section around the best one that fits; the smallest that does not is its topic.
    picked: Selection = {}
    topic = list(range(len(sections)))
    for candidate in [best, *runbook.parents(best)]:
        span = {i: whole[i] for i in runbook.span(candidate)}
        if total(span) > budget:
            topic = list(span)
            break
        picked = span

    def add(index: int) -> None:
        if index in picked:
            return
        left = budget - total(picked) - extra[index]
        if sum(costs[index]) + 2 * len(costs[index]) <= left:
            picked[index] = whole[index]
            return
        blocks = _best_blocks(sections[index], costs[index], left, weigh, act)
        if blocks:
            picked[index] = blocks

    commanded = [act and _has_command(section) for section in sections]
    add(best)
    top = scores[best] or 1.0

    def order(i: int) -> tuple[bool, int, int]:
        # Sections with a command first (when asked what to do); then by score, where scores
        # within a tenth of the best's of each other count as equal and the earlier section goes
        # first: runbooks are written in the order things are done ("what do I check first?").
        return (not commanded[i], -math.floor(scores[i] / top * 10), i)

    # The rest of the topic first (a symptom's investigation and solution), then the whole runbook.
    for index in sorted(topic, key=order):
        if scores[index] > 0:
            add(index)
    for index in sorted(range(len(sections)), key=order):
        if scores[index] > 0 and scores[index] >= fill * top:
            add(index)
    # A heading with nothing chosen under it says nothing.
    for index in [i for i in picked if all(b.kind == "heading" for b in sections[i].blocks)]:
        if index + 1 not in picked or sections[index + 1].level <= sections[index].level:
            del picked[index]
    return dict(sorted(picked.items()))


def _best_blocks(
    section: Section, costs: list[int], left: int, weigh: Callable[[Block], float], act: bool
) -> list[int]:
    """The blocks of ``section`` that match best within ``left``: its heading, then groups of a code
    block with the paragraph that introduces it (or a paragraph alone), best first. When the
    question asks what to do, groups with a command come before those without."""
    blocks = section.blocks
    keep: set[int] = {0} if blocks and blocks[0].kind == "heading" else set()
    spent = sum(costs[i] + 2 for i in keep)
    if spent > left:
        return []
    groups: list[list[int]] = []
    for i, block in enumerate(blocks):
        if i in keep:
            continue
        if block.kind == "code" and groups and groups[-1] == [i - 1] and blocks[i - 1].kind == "text":
            groups[-1].append(i)
        else:
            groups.append([i])

    def rank(group: list[int]) -> tuple[bool, float]:
        weight = sum(weigh(blocks[i]) for i in group)
        return (act and any(block_commands(blocks[i]) for i in group), weight)

    for group in sorted(groups, key=lambda g: (*(-x for x in rank(g)), g[0])):
        commanded, weight = rank(group)
        if weight <= 0 and not commanded:
            continue
        extra = sum(costs[j] + 2 for j in group)
        if spent + extra <= left:
            keep.update(group)
            spent += extra
    return sorted(keep) if keep - {0} else []


#: Stands for the blocks left out between a heading and what is quoted under it.
_GAP = Block("text", [SourceLine(0, "...")])


def _excerpts(runbook: Runbook, picked: Selection, scores: Sequence[float], relevance: float) -> list[Excerpt]:
    """One excerpt per contiguous run of chosen blocks, in document order; the blocks chosen from one
    section are one excerpt, with ``...`` where blocks were left out."""
    runs: list[list[tuple[int, int]]] = []
    previous: tuple[int, int] | None = None
    for i, chosen in picked.items():
        for j in chosen:
            contiguous = previous is not None and (
                (previous[0] == i and previous[1] == j - 1)
                or (previous[0] == i - 1 and j == 0 and previous[1] == len(runbook.sections[i - 1].blocks) - 1)
            )
            if contiguous:
                runs[-1].append((i, j))
            elif previous is not None and previous[0] == i:
                # One excerpt per section: blocks left out between two quoted ones become "...".
                runs[-1] += [(-1, -1), (i, j)]
            else:
                runs.append([(i, j)])
            previous = (i, j)
    found: list[Excerpt] = []
    listed: set[int] = set()
    for run in runs:
        blocks = [runbook.sections[i].blocks[j] if i >= 0 else _GAP for i, j in run]
        run = [(i, j) for i, j in run if i >= 0]
        first = runbook.sections[run[0][0]]
        new = [i for i in dict.fromkeys(i for i, _ in run) if i not in listed]
        listed.update(new)
        section_commands = [c for i in new for block in runbook.sections[i].blocks for c in block_commands(block)]
        found.append(
            Excerpt(
                source=runbook.source,
                heading=first.heading or (runbook.title or runbook.source),
                start_line=min((b.start_line for b in blocks if b.start_line), default=0),
                end_line=max(b.end_line for b in blocks),
                text="\n\n".join(b.text for b in blocks),
                score=round(max(scores[i] for i, _ in run), 4),
                relevance=relevance,
                blocks=blocks,
                commands=section_commands,
            )
        )
    return found


def _question_weights(question: str, stats: TermStats | None) -> dict[int, float]:
    asked = {term_id(t) for t in tokenize(question)}
    if stats is None or not stats.chunks:
        return dict.fromkeys(asked, 1.0)
    return {term: stats.idf(term) for term in asked}


def _select(
    question: str,
    runbook: Runbook,
    stats: TermStats | None,
    hits: Sequence[Hit],
    *,
    budget: int,
    cost: Callable[[Block], int],
    fill: float,
    section_cost: Callable[[Section], int] = lambda section: 0,
) -> list[Excerpt]:
    scores = score_sections(question, runbook, stats, hits)
    relevance = round(max((h.relevance for h in hits if h.chunk.source == runbook.source), default=0.0), 4)
    weights = _question_weights(question, stats)

    def weigh(block: Block) -> float:
        terms = _term_counts(block.text)
        return sum(w for t, w in weights.items() if t in terms)

    act = asks_for_action(question)
    picked = choose_sections(
        runbook, scores, budget=budget, cost=cost, act=act, fill=fill, weigh=weigh, section_cost=section_cost
    )
    return _excerpts(runbook, picked, scores, relevance)


def _cut(
    question: str, runbook: Runbook, stats: TermStats | None, hits: Sequence[Hit], budget: int, cost: Cost
) -> list[Excerpt]:
    """The best section's first lines that fit ``budget``, when not even one of its blocks does (a
    code block longer than the whole budget): better a cut quote than none."""
    if not runbook.sections or budget <= 0:
        return []
    scores = score_sections(question, runbook, stats, hits)
    best = runbook.sections[max(range(len(scores)), key=lambda i: (scores[i], -i))]
    lines: list[SourceLine] = []
    for line in (line for block in best.blocks for line in [*block.lines, SourceLine(0, "")]):
        if cost("\n".join(x.text for x in [*lines, line, SourceLine(0, ELISION)])) > budget:
            break
        lines.append(line)
    if not any(line.number for line in lines):
        return []
    block = Block("text", [*lines, SourceLine(0, ELISION)])
    relevance = round(max((h.relevance for h in hits if h.chunk.source == runbook.source), default=0.0), 4)
    return [
        Excerpt(
            runbook.source,
            best.heading or runbook.source,
            block.start_line,
            block.end_line,
            block.text.strip(),
            round(max(scores), 4),
            relevance,
            [block],
        )
    ]


def extract_excerpts(
    question: str,
    runbook: Runbook,
    stats: TermStats | None,
    hits: Sequence[Hit],
    *,
    budget: int = ANSWER_CHARS,
) -> list[Excerpt]:
    """What the offline answer quotes from ``runbook``: at most ``budget`` characters with the quotes'
    headers and the Commands block that repeats their commands. A runbook whose text fits is quoted
    whole, its Commands block on top (:func:`~opsmith.rag.answer.extractive_answer` keeps the
    answer under :data:`ANSWER_CAP`)."""

    # Sample output in a code block (logs, tables) helped find the section; quoting it whole would
    # crowd out the fix. Commands stay whole.
    runbook = Runbook(
        runbook.source,
        runbook.title,
        [replace(section, blocks=[compact(block) for block in section.blocks]) for section in runbook.sections],
    )

    def cost(block: Block) -> int:
        return len(block.text)

    def listed(section: Section) -> int:
        # A quote's header line ("[n] source — heading path (lines a-b)"), a "..." for what is left
        # out, and the Commands block listing the section's commands again (shortened).
        header = len(runbook.source) + len(section.heading) + 40
        return header + sum(min(len(t), COMMAND_PREVIEW) + 20 for b in section.blocks for t, _ in block_commands(b))

    # The answer's own lines: the intro, and the Commands block's title.
    overhead = len(runbook.source) + 120
    found = _select(question, runbook, stats, hits, budget=budget - overhead, cost=cost, fill=0.5, section_cost=listed)
    return found or _cut(question, runbook, stats, hits, budget - overhead, len)


def context_excerpts(
    question: str,
    runbook: Runbook,
    stats: TermStats | None,
    hits: Sequence[Hit],
    *,
    budget: int,
    count_tokens: Cost,
    load: Callable[[Hit], tuple[Runbook, list[Hit]]] | None = None,
) -> list[Excerpt]:
    """The LLM's context: the best runbook's sections (whole when it fits), then the other
    runbooks' best parts, at most ``budget`` tokens of excerpt text together.

    The best runbook leaves room for the two best hits from other runbooks: when retrieval ranked
    the wrong runbook first, the right one is usually among them. With ``load`` (a hit's whole
    runbook and its chunks' hits) each of those is read whole too and its best sections used
    within the room left; without, the hit's chunk is used.
    """
    others: list[Hit] = []
    for hit in hits:
        if hit.chunk.source != runbook.source and all(hit.chunk.source != o.chunk.source for o in others):
            others.append(hit)
    reserve = min(sum(count_tokens(hit.chunk.text) for hit in others[:2]), budget // 2)

    def cost(block: Block) -> int:
        return count_tokens(block.text)

    found = _select(question, runbook, stats, hits, budget=budget - reserve, cost=cost, fill=0.0)
    found = found or _cut(question, runbook, stats, hits, budget - reserve, count_tokens)
    spent = sum(count_tokens(e.text) for e in found)
    for number, hit in enumerate(others):
        left = budget - spent
        if left <= 0:
            break
        if load is not None and number < 2:
            other, other_hits = load(hit)
            parts = _select(question, other, stats, [hit, *other_hits], budget=left, cost=cost, fill=0.0)
        else:
            chunk = hit.chunk
            text = chunk.text.strip("\n")
            score, relevance = round(hit.score, 4), round(hit.relevance, 4)
            excerpt = Excerpt(chunk.source, chunk.heading, chunk.start_line, chunk.end_line, text, score, relevance)
            parts = [excerpt] if count_tokens(text) <= left else []
        spent += sum(count_tokens(e.text) for e in parts)
        found.extend(parts)
    return found


# --- commands --------------------------------------------------------------------------------

_SHELL = {"", "bash", "sh", "shell", "zsh", "console", "terminal", "shell-session", "powershell", "ps1", "cmd", "fish"}
_QUERY = {"promql", "sql", "logql", "psql", "mysql", "cql", "kql", "traceql"}
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})\s*([\w+-]*)")
_PROMPT = re.compile(r"^\s*(?:\$|>|PS>|[\w.-]+@[\w.-]+[:~][^$#]*[$#])\s+")
# "# " is a root prompt only in a transcript with no "$" prompts; in a script it starts a comment.
_ROOT_PROMPT = re.compile(r"^\s*#\s+")
_TRANSCRIPT = {"console", "terminal", "shell-session"}
# A line of output or configuration rather than a command: a table header, a key: value, a log line.
_NOT_COMMAND = re.compile(r"^(?:[A-Z][A-Z_ ]{2,}\s|[\w.-]+:\s|[\w.-]+:$|\d|\[|\{|\}|\]|<|=|-{2,}\s*$)")


def commands(excerpts: Sequence[Excerpt], *, limit: int = MAX_COMMANDS) -> list[Command]:
    """The commands of the sections the excerpts quote, in order, each with its source line.

    Shell blocks give one command per line (a line ending in ``\\`` continues on the next, and the
    command keeps both lines, re-indented, so it can be pasted as it is); a prompt
    (``$``, ``#``) is removed, and when a block has prompts, the lines without one are its
    output. Query blocks (PromQL, SQL, ...) give the whole query. Configuration blocks (YAML,
    JSON) are not commands.
    """
    found: list[Command] = []
    seen: set[str] = set()
    for excerpt in excerpts:
        for text, line in excerpt.commands:
            if text not in seen:
                seen.add(text)
                found.append(Command(text, excerpt.source, line))
    return found[:limit]


#: Output lines kept after each command of a code block in a quote, and lines of any other code block.
OUTPUT_LINES = 2
CODE_LINES = 20
ELISION = "..."


def _prompts(language: str, texts: Sequence[str]) -> Callable[[str], re.Match[str] | None]:
    """How a code block marks its commands: the prompt matcher for its lines."""
    if language in _TRANSCRIPT and not any(_PROMPT.match(text) for text in texts):
        return lambda text: _PROMPT.match(text) or _ROOT_PROMPT.match(text)
    return _PROMPT.match


def compact(block: Block) -> Block:
    """``block`` for quoting in a short answer: a code block keeps every command and the first
    :data:`OUTPUT_LINES` lines of each command's output (a block without prompts, its first
    :data:`CODE_LINES` lines); what is left out becomes one ``...`` line."""
    if block.kind != "code" or len(block.lines) < 3:
        return block
    fence, body, close = block.lines[0], block.lines[1:-1], [block.lines[-1]]
    if not _FENCE.match(close[0].text):  # a fence left open runs to the end of the document
        body, close = block.lines[1:], []
    match = _FENCE.match(fence.text)
    prompt = _prompts((match.group(2) if match else "").lower(), [line.text for line in body])
    prompted = any(prompt(line.text) for line in body)
    kept: list[SourceLine] = []
    output = 0
    for line in body:
        if prompted and prompt(line.text):
            output = 0
            kept.append(line)
            continue
        output += 1
        limit = OUTPUT_LINES if prompted else CODE_LINES
        if output <= limit or (not prompted and output == limit + 1 and line is body[-1]):
            kept.append(line)
        elif output == limit + 1:
            kept.append(SourceLine(0, ELISION))
    if len(kept) == len(body):
        return block
    return Block(block.kind, [fence, *kept, *close])


def block_commands(block: Block) -> list[tuple[str, int]]:
    """The commands of one code block with their source lines; none for any other block."""
    if block.kind != "code" or len(block.lines) < 2:
        return []
    match = _FENCE.match(block.lines[0].text)
    language = (match.group(2) if match else "").lower()
    body = block.lines[1:]
    if body and _FENCE.match(body[-1].text):
        body = body[:-1]
    return _block_commands(language, body)


def _block_commands(language: str, body: Sequence[SourceLine]) -> list[tuple[str, int]]:
    lines = [(line.text.rstrip(), line.number) for line in body if line.text.strip()]
    if not lines:
        return []
    if language in _QUERY:
        return [("\n".join(text for text, _ in lines).strip(), lines[0][1])]
    if language not in _SHELL:
        return []
    prompt_of = _prompts(language, [text for text, _ in lines])
    prompted = any(prompt_of(text) for text, _ in lines)
    found: list[tuple[str, int]] = []
    pending: list[str] = []
    start = 0
    for text, number in lines:
        if pending:
            pending.append("  " + text.strip())
            if not text.endswith("\\"):
                found.append(("\n".join(pending), start))
                pending = []
            continue
        prompt = prompt_of(text)
        if prompted and not prompt:
            continue  # output
        command = text[prompt.end() :] if prompt else text.strip()
        if not command or command.startswith("#") or (not prompt and _NOT_COMMAND.match(command)):
            continue
        if language == "" and not re.match(r"^[a-z][\w.-]*(?:\s|$)", command):
            continue  # an unlabelled block: only lines that start like a command
        if command.endswith("\\"):
            pending, start = [command], number
            continue
        found.append((command, number))
    if pending:
        found.append(("\n".join(pending), start))
    return found


# --- coverage --------------------------------------------------------------------------------

_TOKEN = re.compile(r"`([^`]+)`|\"([^\"]+)\"|((?:--?)?[A-Za-z][\w./:-]*\w)")
# Shaped like an identifier: camelCase, CAPS, snake_case, dotted, a path, digits, a --flag.
_IDENTIFIER = re.compile(r"[a-z][A-Z]|[A-Z]{2}|[_./:]|\d")
_SUFFIXES = ("ing", "est", "ers", "er", "ed", "es", "s", "d")


def _variants(word: str) -> list[str]:
    """``word`` and the forms it may be inflected from: "reinstalled" → "reinstall", "install"."""
    found = [word]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            found.append(word[: -len(suffix)])
    found += [v[2:] for v in list(found) if v.startswith("re") and len(v) >= 5]
    return found


def not_covered(
    question: str,
    runbook_text: str,
    corpus_has: Callable[[str], bool],
    is_word: Callable[[str], bool] = lambda word: True,
) -> list[str]:
    """The question's specific terms that no runbook in the collection mentions, in question order.

    A term counts when it is something a runbook would name literally, and neither the best runbook
    (``runbook_text``) nor any other (``corpus_has``) does: an identifier (``allowVolumeExpansion``,
    ``RECENT_CRASH``, ``--storage.tsdb.retention.time``), a term in backticks or quotes, or a word
    that is not an ordinary word of the language (``noout``, ``nearfull``), which ``is_word`` tells
    (with the embedder's vocabulary: an ordinary word is one token, also after removing an
    inflection). Ordinary words are left alone even when no runbook uses them: a question says
    "froze" where the runbook says "hangs".
    """
    missing: list[str] = []
    lowered = runbook_text.lower()
    for match in _TOKEN.finditer(question):
        term = next(group for group in match.groups() if group)
        literal = match.group(1) is not None or match.group(2) is not None
        # A flag or an identifier is one term; "crash-looping" is two words.
        whole = literal or term.startswith("-") or bool(_IDENTIFIER.search(term))
        parts = [term] if whole else term.split("-")
        for part in parts:
            words = [w for w in tokenize(part) if w not in STOPWORDS]
            if not words or len(part) < 2 or part in missing:
                continue
            forms = _variants(part.lower())
            specific = whole or not any(is_word(f) for f in forms)
            if not specific or any(f in lowered for f in forms):
                continue
            # A flag or a quoted term is taken literally: absent from the best runbook is enough.
            literally = literal or part.startswith("-")
            if literally or not any(corpus_has(f) for f in forms):
                missing.append(part)
    return missing
