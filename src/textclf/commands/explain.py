"""``textclf explain "headline"``: the served answer and what it rests on, in the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from textclf.errors import UserError

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="classify one headline and show why: label bars, tokens shaded by attribution, n-grams",
        description="Runs the packaged model's own inference.py explain request (what POST /explain "
        "returns): the label and its probabilities, the tokens the transformer saw shaded by their "
        "occlusion attribution (green toward the answer, red away), and the lexical head's n-grams.",
    )
    parser.add_argument("headline", help="the headline to explain")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model.tar.gz or folder (default <artifacts>/package/model.tar.gz)",
    )
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours (also when NO_COLOR is set)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.serving.endpoint import BadPayloadError, ServingModel, default_model_path

    model = ServingModel.load(default_model_path(args.model))
    try:
        texts = model.texts(
            json.dumps({"inputs": args.headline, "explain": True}).encode(), "application/json"
        )
    except BadPayloadError as exc:
        if "explain" in str(exc) and "unknown field" in str(exc):
            raise UserError(
                f"the archive's inference.py ({model.model_dir}) predates explanations: "
                "package the model again with `textclf package`"
            ) from exc
        raise UserError(str(exc)) from exc
    explanation = json.loads(model.explain(texts, "application/json"))
    color = not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    print(json.dumps(explanation, indent=2) if args.json else render(explanation, color=color))
    return 0


def render(explanation: dict[str, Any], *, color: bool) -> str:
    lines = [f"{explanation['label']}  ({explanation['score']:.1%}, model {explanation['model_version']})"]
    for label, p in sorted(explanation["scores"].items(), key=lambda item: -item[1]):
        filled = round(p * BAR_WIDTH)
        lines.append(f"  {label:<24} {'█' * filled}{'·' * (BAR_WIDTH - filled)} {p:6.1%}")
    lines += ["", f"answered by the {explanation['answered_by']}", "", "tokens (toward + / against -):"]
    lines.append(
        "  "
        + " ".join(
            _token(t, a, color)
            for t, a in zip(explanation["tokens"], explanation["attributions"], strict=True)
        )
    )
    lexical = explanation.get("lexical")
    if lexical:
        for side in ("toward", "against"):
            items = ", ".join(f"{e['ngram']} ({e['weight']:+.2f})" for e in lexical[side]) or "none"
            lines.append(f"n-grams {side}: {items}")
    lines += ["", f"attributions: {explanation['attribution_method']}"]
    return "\n".join(lines)


def _token(token: dict[str, Any], attribution: float, color: bool) -> str:
    text = token["text"]
    if token["special"] or token["truncated"]:
        shown = f"[cut]{text}" if token["truncated"] else text
        return f"\033[2m{shown}\033[0m" if color else shown
    if not color:
        return f"{text}({attribution:+.2f})"
    # 256-colour backgrounds: three shades each way by strength (|log-odds| 0.1 / 0.5 / 1).
    shades = (194, 157, 120) if attribution > 0 else (224, 217, 210)
    strength = abs(attribution)
    if strength < 0.1:
        return text
    shade = shades[0] if strength < 0.5 else shades[1] if strength < 1.0 else shades[2]
    return f"\033[48;5;{shade}m\033[38;5;16m{text}\033[0m"
