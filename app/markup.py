r"""User-controlled text in Markdown, as text: upload and folder names, card fields (class names, labels),
error messages that quote them (no st.* here).

Every st.markdown, st.caption, st.info, st.error, ... renders Markdown: a file named
``![x](http:\\host\leak.png).png`` would make the browser fetch that image, and ``:red[...]``, ``$...$``,
``**...**`` or a link would style the page. :func:`text` backslash-escapes every character that can open
Markdown (CommonMark lets any ASCII punctuation be escaped: images and links need ``[`` and ``!``, raw HTML
and autolinks ``<``, Streamlit's colours and badges ``[``, its LaTeX ``$``, emphasis ``*`` and a ``_`` at a
word's edge, entities ``&``) and folds line breaks (no block can start inside it), so the string shows exactly
as it is. Characters that open nothing inline (``.``, ``-``, ``(``, ``:``, a ``_`` inside a word) stay as they
are, except where a line's start would make a list or heading of them; :func:`code` puts the string in a code
span whose fence no run of backticks inside can close.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*\[\]<>!$&#~|])")
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_BLOCK_START = re.compile(r"^(\s*)(\d+)([.)])|^(\s*)([-+=])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def text(value) -> str:
    """``value`` (any object: its str) as Markdown that shows exactly its characters, on one line."""
    body = _ALWAYS.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))
    body = _EDGE_UNDERSCORE.sub(r"\\_", body)
    return _BLOCK_START.sub(lambda m: f"{m[1]}{m[2]}\\{m[3]}" if m[2] else f"{m[4]}\\{m[5]}", body, count=1)


def code(value) -> str:
    """``value`` as an inline code span (Markdown shows nothing inside one as markup)."""
    body = _LINE_BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"
