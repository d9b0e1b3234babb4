"""Answers rendered for people reading a terminal."""

from __future__ import annotations

import textwrap

from .answers import Answer, Citation

_BOLD, _DIM, _RESET = "\033[1m", "\033[2m", "\033[0m"


def _marked(citation: Citation, color: bool) -> str:
    """The cited sentence with the answer marked, cut from the sentence by offsets."""
    head = citation.sentence[: citation.start - citation.sentence_start]
    tail = citation.sentence[citation.end - citation.sentence_start:]
    mark = f"{_BOLD}{citation.quote}{_RESET}" if color else f"[{citation.quote}]"
    return f"{head}{mark}{tail}"


def _where(citation: Citation) -> str:
    parts = [f'"{citation.title}"', citation.source, citation.published or ""]
    return ", ".join(p for p in parts if p) + f"  [{citation.doc_id} @ {citation.start}-{citation.end}]"


def render_answer(answer: Answer, color: bool = False) -> str:
    lines = []
    if answer.abstained:
        lines.append(answer.message)
        if answer.alternatives:
            guess = answer.alternatives[0]
            lines.append(f'  (best guess "{guess.text}", confidence {guess.confidence:.2f})')
        lines.append("Closest passages:")
        for number, passage in enumerate(answer.passages[:3], start=1):
            snippet = textwrap.shorten(passage.text, 160, placeholder=" ...")
            lines.append(f"  {number}. {passage.title} ({passage.source or passage.doc_id}): {snippet}")
        return "\n".join(lines)
    agree = f", {answer.sources} sources agree" if answer.sources > 1 else ""
    lines.append(f"{answer.text}   (confidence {answer.confidence:.2f}{agree})")
    for citation in answer.citations:
        lines.append(f"  {_where(citation)}")
        lines.append(textwrap.indent(textwrap.fill(_marked(citation, color), 100), "    "))
        for day in citation.dates:
            lines.append(f"    ({day.text} = {day.date})")
    if answer.conflicts:
        lines.append("Other sources say otherwise:")
        for other in answer.conflicts:
            lines.append(f"  - {other.text} ({other.confidence:.2f}) in {_where(other.citations[0])}")
    if answer.alternatives:
        lines.append("Other answers found:")
        for alt in answer.alternatives:
            lines.append(f"  - {alt.text} ({alt.confidence:.2f}) in {alt.citations[0].title}")
    timing = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.timings_ms.items())
    lines.append(f"{_DIM}{timing}{_RESET}" if color else timing)
    return "\n".join(lines)
