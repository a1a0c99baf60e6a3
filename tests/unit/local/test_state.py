"""The local stack's state folder: what it keeps, what it refuses, and that a refusal writes nothing."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from textclf.cli import main
from textclf.local.state import LAYOUT_FILE, StateError, StateStore, write_atomic


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def old_layout(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / LAYOUT_FILE).write_text(json.dumps({"layout": 0}))
    (folder / "state.db").write_bytes(b"what an older textclf wrote")
    return folder


def test_a_store_keeps_objects_items_calls_records_and_events_across_opens(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "state")
    store.put_object("b", "models/x.tar.gz", '"e1"', b"archive", {"ContentType": "application/gzip"})
    store.put_object("b", "tmp/y", '"e2"', b"scratch", {})
    store.delete_objects("b", ["tmp/y"])
    store.replace_table("deployments", {"k1": {"id": {"S": "job#1"}}})
    store.add_call("SageMaker.CreateModelPackage", b'{"ModelPackageGroupName": "g"}')
    store.save("training-job", "job-1", {"name": "job-1", "status": "Completed"})
    store.add_event("ev-1", "DeployFunction", {"id": "ev-1"})
    store.add_event("ev-2", "DeployFunction", {"id": "ev-2"})
    store.event_done("ev-1", "DeployFunction")
    store.close()

    again = StateStore.open(tmp_path / "state")
    [obj] = again.objects()
    assert (obj.key, obj.etag, again.blob(obj.sha256)) == ("models/x.tar.gz", '"e1"', b"archive")
    assert again.collect_blobs() == 1  # the deleted object's body
    assert again.items() == [("deployments", {"id": {"S": "job#1"}})]
    assert again.calls() == [("SageMaker.CreateModelPackage", b'{"ModelPackageGroupName": "g"}')]
    assert again.records("training-job") == [{"name": "job-1", "status": "Completed"}]
    assert again.pending_events() == [("DeployFunction", {"id": "ev-2"})]
    again.close()


def test_an_atomic_write_leaves_the_old_content_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "layout.json"
    write_atomic(target, b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["layout.json"]  # no temporary file left


def test_a_folder_of_an_older_layout_is_refused_untouched_and_fresh_discards_it(tmp_path: Path) -> None:
    folder = old_layout(tmp_path / "state")
    before = snapshot(folder)
    with pytest.raises(StateError, match=r"layout 0; this one reads layout 1.*--fresh"):
        StateStore.open(folder)
    assert snapshot(folder) == before
    StateStore.open(folder, fresh=True).close()
    assert json.loads((folder / LAYOUT_FILE).read_text()) == {"layout": 1}
    assert b"older textclf" not in (folder / "state.db").read_bytes()


def test_a_folder_without_a_layout_number_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.db").write_bytes(b"x")
    with pytest.raises(StateError, match="no layout number"):
        StateStore.open(tmp_path / "state")


@pytest.mark.parametrize(
    "failure",
    [("mkstemp", errno.EROFS, "read-only file system"), ("write", errno.ENOSPC, "no space left on device")],
)
def test_a_read_only_or_full_state_folder_fails_the_start_in_one_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: tuple[str, int, str],
) -> None:
    where, code, said = failure
    folder = tmp_path / "state"
    StateStore.open(folder).close()
    before = snapshot(folder)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    # The probe write is where a read-only or full disk shows first (as root, chmod would not).
    monkeypatch.setattr(tempfile if where == "mkstemp" else os, where, refuse)
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    exit_code = main(
        ["serve", "--port", "0", "--endpoint-port", "0", "--model", str(tmp_path), "--state-dir", str(folder)]
    )
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert exit_code == 2
    assert err.count("\n") == 0 and said in err and str(folder) in err, err
    assert snapshot(folder) == before


def test_serve_refuses_an_older_state_folder_in_one_line_naming_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = old_layout(tmp_path / "state")
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    code = main(
        ["serve", "--port", "0", "--endpoint-port", "0", "--model", str(tmp_path), "--state-dir", str(folder)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--fresh" in err, err
    assert (folder / "state.db").read_bytes() == b"what an older textclf wrote"
