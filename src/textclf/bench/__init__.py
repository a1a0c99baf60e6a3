"""``textclf bench``: serving benchmark at model, endpoint and API level, beside a baseline.

Modules:

- ``stats``: percentiles and latency summaries (no heavy imports).
- ``loadgen``: closed-loop HTTP/1.1 load generator, loopback only, bounded in requests and time.
- ``servers``: start/stop a server as a separate process, sample its RSS.
- ``baseline_server``: the usual way to serve the model, a FastAPI app calling ``pipeline``.
- ``model_bench``: one-process latency/throughput per runtime and int8-vs-fp32 accuracy.
- ``report``: table, ``bench.json`` and PNG plots.
- ``runner``: puts the pieces together for the CLI command.
"""
