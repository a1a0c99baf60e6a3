"""The order `make test`'s two xdist workers take test files in: the slowest first.

``--dist loadfile`` gives each worker whole files, and xdist hands them out by number of tests,
most first. That leaves the files of one or two long tests (a trained stack, torchrun, the bench)
for the end, where one of them can hold one worker for minutes while the other has nothing left.
Handing those out first, and the hundreds of fast tests after them, lets the fast ones even out
the end instead. The order of tests inside a file, and of files of equal rank, stays random.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

from xdist.scheduler import LoadFileScheduling

#: Files measured slowest in CI (seconds of one worker on 2 shared cores, longest first). A file
#: missing here loses only its place at the front; one with a ``heavy`` or ``integration`` mark
#: still goes before the unmarked files.
SLOWEST_FIRST = (
    "tests/integration/test_loop.py",  # two stacks, each training and rolling out a model
    "tests/unit/training/test_train_command.py",
    "tests/integration/test_restart.py",
    "tests/unit/bench/test_bench_command.py",
    "tests/integration/test_any_dataset.py",
    "tests/unit/training/test_distributed.py",
    "tests/integration/test_local_stack.py",
    "tests/unit/bench/test_servers.py",
    "tests/unit/training/test_train_script.py",
    "tests/integration/test_playground.py",
    "tests/integration/test_attacks.py",
    "tests/unit/api/test_template.py",
    "tests/integration/test_faults.py",
    "tests/unit/training/test_upload_source.py",
)
_MARKS = ("mark.heavy", "mark.integration")


@cache
def rank(root: Path, scope: str) -> int:
    """Larger goes first: a listed file by its place, then marked files, then the rest."""
    if scope in SLOWEST_FIRST:
        return 2 + len(SLOWEST_FIRST) - SLOWEST_FIRST.index(scope)
    try:
        text = (root / scope).read_text(encoding="utf-8")
    except OSError:  # not a file path (a doctest's or a package's scope): no rank
        return 0
    return 1 if any(mark in text for mark in _MARKS) else 0


class _SlowestFirstQueue(OrderedDict[str, Any]):
    """xdist takes work with ``popitem(last=False)``: here that is the first file of highest rank
    (ties keep xdist's own order, most tests first)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        if last:
            return super().popitem(last=True)
        scope = max(self, key=lambda s: rank(self.root, s))  # max keeps the first of equals
        return scope, self.pop(scope)


class SlowestFirstFileScheduling(LoadFileScheduling):
    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self.workqueue = _SlowestFirstQueue(Path(config.rootpath))
