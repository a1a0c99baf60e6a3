"""``textclf replay``: the news corpus replayed in time order through a running stack's HTTP API,
to show what learning from production is worth (served vs frozen vs oracle accuracy per window)."""
