"""A table of hostile request bodies and a leak check, shared by the unit and HTTP attack tests.

Each body is built for a field pair: the API's (``text``/``texts``) or the model container's
(``inputs``/``inputs``), so the same attack reaches both parsers in the shape each one reads.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

API_FIELDS = ("text", "texts")
CONTAINER_FIELDS = ("inputs", "inputs")
FIVE_MB = 5 * 1024 * 1024


@dataclass(frozen=True)
class HostileBody:
    name: str
    build: Callable[[str, str], bytes]  # (single-text field, list field) -> body bytes
    #: The status POST /predict answers, as docs/openapi.json documents it: 400 a body that cannot
    #: be read as JSON, 413 one over the function's limit, 422 JSON that does not fit the schema.
    status: int
    content_type: str = "application/json"

    @property
    def raw(self) -> bytes:
        """The body as the model container receives it."""
        return self.build(*CONTAINER_FIELDS)

    @property
    def api_raw(self) -> bytes:
        return self.build(*API_FIELDS)

    def event_body(self) -> tuple[str, bool]:
        """(body, isBase64Encoded) of the API Gateway event: non-UTF-8 bytes arrive base64-encoded."""
        data = self.api_raw
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii"), True


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


HOSTILE_BODIES: list[HostileBody] = [
    HostileBody("nested-arrays-10k", lambda s, m: b"[" * 10_000 + b"]" * 10_000, 400),
    HostileBody("nested-objects-10k", lambda s, m: b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400),
    HostileBody("nested-in-the-field", lambda s, m: _utf8(f'{{"{s}": ' + "[" * 5000 + "]" * 5000 + "}"), 400),
    HostileBody("utf-16", lambda s, m: json.dumps({s: "stocks rally"}).encode("utf-16"), 400),
    HostileBody("utf-32", lambda s, m: json.dumps({s: "stocks rally"}).encode("utf-32"), 400),
    HostileBody("utf-8-bom", lambda s, m: b"\xef\xbb\xbf" + _utf8(json.dumps({s: "stocks rally"})), 400),
    HostileBody("latin-1", lambda s, m: f'{{"{s}": "café prices soar"}}'.encode("latin-1"), 400),
    HostileBody("integer-5000-digits", lambda s, m: _utf8(f'{{"{s}": {"9" * 5000}}}'), 400),
    HostileBody("float-overflow", lambda s, m: _utf8(f'{{"{s}": 1e999999}}'), 422),
    HostileBody("nan", lambda s, m: _utf8(f'{{"{s}": NaN}}'), 400),
    HostileBody("infinity", lambda s, m: _utf8(f'{{"{s}": -Infinity}}'), 400),
    HostileBody(
        "duplicate-keys", lambda s, m: _utf8(f'{{"{s}": "stocks rally", "{s}": "ebola spreads"}}'), 400
    ),
    HostileBody("string-5mb", lambda s, m: _utf8(json.dumps({s: "x" * FIVE_MB})), 413),
    HostileBody("array-10k", lambda s, m: _utf8(json.dumps({m: ["stocks rally"] * 10_000})), 422),
    HostileBody("lone-surrogate", lambda s, m: _utf8(f'{{"{s}": "stocks \\ud800 rally"}}'), 400),
    HostileBody("not-json", lambda s, m: b"text=stocks+rally", 400),
    HostileBody("truncated", lambda s, m: _utf8(f'{{"{s}": "stocks ral'), 400),
    HostileBody("top-level-array", lambda s, m: _utf8(json.dumps(["stocks rally"])), 422),
    HostileBody("top-level-null", lambda s, m: b"null", 422),
    HostileBody("binary-garbage", lambda s, m: bytes(range(256)) * 8, 400),
]

#: Strange but legitimate headlines: classified like any other (never a 5xx, never refused).
VALID_ODD_BODIES: list[HostileBody] = [
    HostileBody("nul-character", lambda s, m: _utf8(json.dumps({s: "stocks\u0000rally"})), 200),
    HostileBody(
        "bidi-override", lambda s, m: _utf8(json.dumps({s: "\u202eyllar skcots\u202c on earnings"})), 200
    ),
    HostileBody("zero-width-and-emoji", lambda s, m: _utf8(json.dumps({s: "stocks\u200b rally 📈"})), 200),
    HostileBody(
        "escaped-surrogate-pair", lambda s, m: _utf8(f'{{"{s}": "stocks \\ud83d\\udcc8 rally"}}'), 200
    ),
]

# What must never reach a client: internals an attacker could use.
_LEAK_PATTERNS = {
    # 12 digits standing alone (an ARN's ":123456789012:", "account 123456789012"), not the last
    # group of a request id's UUID, which is 12 hex digits and sometimes only decimal ones.
    "account id": re.compile(r"(?<![0-9A-Za-z-])\d{12}(?![0-9A-Za-z])"),
    "ARN": re.compile(r"arn:aws[a-z-]*:"),
    "traceback": re.compile(r"Traceback|File \"[^\"]+\", line \d+"),
    "Python exception name": re.compile(
        r"\b(RecursionError|UnicodeDecodeError|UnicodeEncodeError|KeyError|TypeError|AttributeError|"
        r"ValueError|EOFError|ClientError|BotoCoreError|ValidationError:|JSONDecodeError)\b"
    ),
    "file path": re.compile(r"(/site-packages/|/work/|/home/|/tmp/|\.py\b)"),
    "AWS error text": re.compile(r"(of account|Could not assume role|is not authorized to perform)"),
}


def leaks(text: str) -> list[str]:
    """Names of the internals ``text`` gives away (empty when it gives none)."""
    return [name for name, pattern in _LEAK_PATTERNS.items() if pattern.search(text)]
