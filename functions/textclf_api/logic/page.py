"""The playground page (``GET /``): one static HTML file, no build step, served by the API itself.

Its inline script and style are allowed by hash in the Content-Security-Policy, so nothing else
can run on the page (no inline handler, no other origin); it only talks to this API.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Final

PAGE: Final = Path(__file__).resolve().parent.parent / "static" / "playground.html"


def _hashes(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block.encode('utf-8')).digest()).decode()}'"
        for block in blocks
    )


@lru_cache(maxsize=1)
def playground() -> tuple[str, dict[str, str]]:
    """The page and its headers (read once per warm function)."""
    html = PAGE.read_text(encoding="utf-8")
    policy = (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; style-src {_hashes(html, 'style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return html, headers
