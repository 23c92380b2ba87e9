"""Rendering helpers shared by result classes: circuitsvis HTML made safe to embed."""

import re

__all__ = ["safe_circuitsvis"]


def _escape_script_data(src: str) -> str:
    """Escape the data part of a circuitsvis ``<script>`` block so no string in it can end the block.

    circuitsvis writes ``CircuitsVis.render("<uuid>", ..., <props as JSON>)`` at the end of one
    ``<script>`` block, with the props' strings (token texts) as plain JSON. A token ``</script>``
    (or ``<!--``) would end the block and let the rest run as page HTML. Inside the JSON strings,
    ``<\\/`` and ``<\\!`` read back as ``</`` and ``<!``, so the view shows the same text.
    """
    uuid = re.match(r'\s*<div id="(circuits-vis-[0-9a-f-]+)"', src)
    script = src.find("<script")
    end = src.rfind("</script>")
    start = src.find(f'"{uuid.group(1)}"', script) if uuid and script >= 0 else -1
    if start < 0 or end < start:  # the random uuid cannot be forged by token text
        raise ValueError("Not circuitsvis output: no render call inside a <script> block.")
    data = src[start:end].replace("</", "<\\/").replace("<!--", "<\\!--")
    return src[:start] + data + src[end:]


def safe_circuitsvis(rendered):
    """A circuitsvis ``RenderedHTML`` whose script data cannot close its ``<script>`` block.

    Examples:
        >>> import circuitsvis.tokens as cvt
        >>> view = safe_circuitsvis(cvt.colored_tokens(["a", "</script><b>x"], [0.1, 0.9]))
        >>> "</script><b>" in view.local_src
        False
    """
    from circuitsvis.utils.render import RenderedHTML

    return RenderedHTML(_escape_script_data(rendered.local_src), _escape_script_data(rendered.cdn_src))
