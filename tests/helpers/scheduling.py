"""How `make test`'s two xdist workers share the test files: the slowest first, groups whole.

``--dist loadfile`` gives each worker whole files, and xdist hands them out by number of tests,
most first. That leaves the files of one or two long tests (a trained stack, torchrun, the bench)
for the end, where one of them can hold one worker for minutes while the other has nothing left.
Handing those out first, and the hundreds of fast tests after them, lets the fast ones even out
the end instead. The order of tests inside a file, and of files of equal rank, stays random.

Files that share a session fixture worth sharing (the local stack's processes) say so with
xdist's own mark, ``pytestmark = pytest.mark.xdist_group("name")``: one worker takes them all,
so the fixture is made once (xdist itself reads the mark only under ``--dist loadgroup``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

from xdist.scheduler import LoadFileScheduling

#: Files (or groups) measured slowest in CI, longest first. One missing here loses only its place
#: at the front; one with a ``heavy`` or ``integration`` mark still goes before unmarked files.
SLOWEST_FIRST = (
    "tests/integration/test_loop.py",  # two stacks, each training and rolling out a model
    "local-stack",  # test_local_stack, test_attacks, test_playground on one stack
    "tests/unit/training/test_train_command.py",
    "tests/integration/test_restart.py",
    "tests/unit/bench/test_bench_command.py",
    "tests/integration/test_any_dataset.py",
    "tests/unit/training/test_distributed.py",
    "tests/unit/bench/test_servers.py",
    "tests/unit/training/test_train_script.py",
    "tests/unit/api/test_template.py",
    "tests/integration/test_faults.py",
    "tests/unit/training/test_upload_source.py",
)
_MARKS = ("mark.heavy", "mark.integration")
_GROUP = re.compile(r"""xdist_group\(\s*(?:name\s*=\s*)?["']([^"']+)["']""")


@cache
def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # not a file (a doctest's or a package's scope)
        return ""


def group_of(root: Path, file: str) -> str:
    """The file's xdist_group name, or the file itself."""
    found = _GROUP.search(_text(root / file))
    return found.group(1) if found else file


def rank(root: Path, scope: str, files: set[str]) -> int:
    """Larger goes first: a listed scope by its place, then marked files, then the rest."""
    if scope in SLOWEST_FIRST:
        return 2 + len(SLOWEST_FIRST) - SLOWEST_FIRST.index(scope)
    return 1 if any(mark in _text(root / f) for f in files for mark in _MARKS) else 0


class _SlowestFirstQueue(OrderedDict[str, Any]):
    """xdist takes work with ``popitem(last=False)``: here that is the first scope of highest rank
    (ties keep xdist's own order, most tests first)."""

    def __init__(self, root: Path, files: dict[str, set[str]]) -> None:
        super().__init__()
        self.root, self.files = root, files

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        if last:
            return super().popitem(last=True)
        # max keeps the first of equals
        scope = max(self, key=lambda s: rank(self.root, s, self.files.get(s, {s})))
        return scope, self.pop(scope)


class SlowestFirstFileScheduling(LoadFileScheduling):
    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self.root = Path(config.rootpath)
        self.files: dict[str, set[str]] = {}  # scope -> its files
        self.workqueue = _SlowestFirstQueue(self.root, self.files)

    def _split_scope(self, nodeid: str) -> str:
        file = nodeid.split("::", 1)[0]
        scope = group_of(self.root, file)
        self.files.setdefault(scope, set()).add(file)
        return scope
