"""The state files' opening: servers and workers starting together on a new file all get it."""

from __future__ import annotations

import threading
from pathlib import Path

from zfsapi.adapters.outbound.state.sqlite import jobs as embedded
from zfsapi.adapters.outbound.state.sqlite.file import open_state_db


def test_connections_opening_a_new_file_at_once_all_get_it(tmp_path: Path) -> None:
    # SQLite answers "database is locked" at once (no busy wait) to a connection switching a new file to WAL
    # while another does: seen as a failed claim when two workers started on a fresh state_dir.
    failed: list[BaseException] = []
    for n in range(60):
        state_dir = str(tmp_path / str(n))
        go = threading.Barrier(4)

        def open_and_write() -> None:
            try:
                go.wait()
                db = open_state_db(state_dir, embedded.FILE, embedded._SCHEMA)
                with embedded._immediate(db):
                    db.execute("SELECT count(*) FROM jobs").fetchall()
                db.close()
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=open_and_write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failed == []
