"""The chat page's sources never turn strings into HTML (the browser test checks the page itself)."""

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "api" / "static"


def test_page_sources_never_turn_strings_into_html():
    """No HTML sinks in the script; no inline script, style or event handler, nothing from another site."""
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setAttribute('style'", 'setAttribute("style"'):
        assert sink not in script, f"app.js uses {sink}"
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "index.html has an inline script"
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE), "index.html has an inline event handler"
    assert not re.search(r"\sstyle\s*=", page, re.IGNORECASE), "index.html has an inline style attribute"
    assert not re.search(r"<style", page, re.IGNORECASE), "index.html has an inline <style>"
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "index.html loads something from another site"
