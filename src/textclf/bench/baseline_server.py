"""The usual way to serve the model, as the benchmark's baseline: FastAPI + ``pipeline``.

One ``pipeline("text-classification")`` call per request, in a plain (sync) FastAPI route, which
FastAPI runs in its thread pool: what most tutorials and quick deployments do. Same wire
contract as the local endpoint (``GET /ping``, ``POST /invocations`` with ``{"inputs": ...}``
→ ``{"predictions": [{"label", "score", "scores"}]}``) so one load generator drives both.

Run: ``python -m textclf.bench.baseline_server --model artifacts/model --port 8081``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from textclf.bench.loadgen import ensure_loopback


class InvocationRequest(BaseModel):
    inputs: str | list[str]


def create_app(model_dir: Path) -> FastAPI:
    """A FastAPI app serving ``model_dir`` (a Hugging Face model folder) with ``pipeline``."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    app = FastAPI(title="textclf baseline (pipeline per request)")

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/invocations")
    def invocations(request: InvocationRequest) -> dict[str, Any]:
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        if not texts or any(not t.strip() for t in texts):
            raise HTTPException(status_code=400, detail="inputs must be non-blank text")
        predictions = []
        for text in texts:
            # top_k=None returns every label's score, the same work the endpoint does.
            scores = classifier(text, top_k=None)
            by_label = {str(s["label"]): float(s["score"]) for s in scores}
            best = max(by_label, key=lambda label: by_label[label])
            predictions.append({"label": best, "score": by_label[best], "scores": by_label})
        return {"predictions": predictions}

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    ensure_loopback(args.host)
    import uvicorn

    # Access logs off: at thousands of requests per second they would cost CPU and disk that
    # the endpoint under test does not pay either.
    if args.fd is not None:
        from textclf.serving.net import inherited_socket

        sock = inherited_socket(args.fd, flag="--fd")
        config = uvicorn.Config(create_app(args.model), log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    else:
        uvicorn.run(
            create_app(args.model), host=args.host, port=args.port, log_level="warning", access_log=False
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
