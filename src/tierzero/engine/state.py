"""Deployment state in SQLite (`.tierzero/state/state.db`, WAL): per step the input
fingerprint, status, outputs (never secrets), timings, attempts and last error; and runs.

Every status change is its own committed transaction, so a killed process leaves at worst
one step marked `running`, which the next run simply runs again (steps are idempotent)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["pending", "running", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    target TEXT NOT NULL,
    id TEXT NOT NULL,
    phase TEXT NOT NULL,
    status TEXT NOT NULL,
    fingerprint TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    started REAL,
    finished REAL,
    duration REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    run_id INTEGER,
    PRIMARY KEY (target, id)
);
CREATE TABLE IF NOT EXISTS meta (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    command TEXT NOT NULL,
    selection TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    error TEXT
);
"""


def _read_only(state_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """One row of a query on a workspace's state, or None; never creates the database."""
    path = state_dir / "state.db"
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute(sql, args).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return tuple(row) if row else None


def last_run_target(state_dir: Path) -> str | None:
    """The target of the newest deploy or destroy recorded in a workspace, or None."""
    row = _read_only(state_dir, "SELECT target FROM runs ORDER BY id DESC LIMIT 1")
    return str(row[0]) if row else None


def finished_steps(state_dir: Path, target: str) -> int:
    """How many steps of `target` are recorded as done in a workspace (0 without a state)."""
    row = _read_only(state_dir, "SELECT COUNT(*) FROM steps WHERE target = ? AND status = 'done'", (target,))
    return int(row[0]) if row else 0


def fingerprint(inputs: Any) -> str:
    """sha256 of the canonical JSON of a step's inputs."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_unjsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _unjsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # nested values come back here
    raise TypeError(f"step inputs must be JSON-able; got {type(value).__name__}")


@dataclass(frozen=True)
class StepRecord:
    id: str
    phase: str
    status: Status
    fingerprint: str | None
    outputs: dict[str, Any]
    started: float | None
    finished: float | None
    duration: float | None
    attempts: int
    last_error: str | None
    run_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RunRecord:
    id: int
    target: str
    command: str
    selection: str
    started: float
    finished: float | None
    status: str
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class StateStore:
    def __init__(self, path: Path, target: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.target = target
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, state_dir: Path, target: str) -> "StateStore":
        return cls(state_dir / "state.db", target)

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(sql, args)
            self._db.execute("COMMIT")
            return cur
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- steps
    def records(self) -> dict[str, StepRecord]:
        rows = self._db.execute(
            "SELECT id, phase, status, fingerprint, outputs, started, finished, duration, attempts, last_error, run_id "
            "FROM steps WHERE target = ?",
            (self.target,),
        ).fetchall()
        return {r[0]: StepRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows}

    def get(self, step_id: str) -> StepRecord | None:
        return self.records().get(step_id)

    def mark_running(self, step_id: str, phase: str, fp: str | None, run_id: int | None) -> None:
        self._write(
            "INSERT INTO steps (target, id, phase, status, fingerprint, started, finished, duration, attempts, run_id) "
            "VALUES (?, ?, ?, 'running', ?, ?, NULL, NULL, 1, ?) "
            "ON CONFLICT (target, id) DO UPDATE SET phase = excluded.phase, status = 'running', "
            "fingerprint = excluded.fingerprint, started = excluded.started, finished = NULL, duration = NULL, "
            "attempts = steps.attempts + 1, run_id = excluded.run_id",
            (self.target, step_id, phase, fp, time.time(), run_id),
        )

    def mark_done(self, step_id: str, outputs: dict[str, Any]) -> None:
        now = time.time()
        self._write(
            "UPDATE steps SET status = 'done', outputs = ?, finished = ?, duration = ? - started, last_error = NULL "
            "WHERE target = ? AND id = ?",
            (json.dumps(outputs, sort_keys=True), now, now, self.target, step_id),
        )

    def mark_failed(self, step_id: str, error: str, status: Status = "failed") -> None:
        now = time.time()
        self._write(
            "UPDATE steps SET status = ?, last_error = ?, finished = ?, duration = ? - started WHERE target = ? AND id = ?",
            (status, error, now, now, self.target, step_id),
        )

    def forget_all(self) -> None:
        self._write("DELETE FROM steps WHERE target = ?", (self.target,))

    def forget(self, step_id: str) -> None:
        self._write("DELETE FROM steps WHERE target = ? AND id = ?", (self.target, step_id))

    # -- facts about the target itself (e.g. which sandbox world the steps were run against)
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE target = ? AND key = ?", (self.target, key)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (target, key, value) VALUES (?, ?, ?) ON CONFLICT (target, key) DO UPDATE SET value = excluded.value",
                    (self.target, key, value))

    # -- runs
    def start_run(self, command: str, selection: str) -> int:
        cur = self._write(
            "INSERT INTO runs (target, command, selection, started, status) VALUES (?, ?, ?, ?, 'running')",
            (self.target, command, selection, time.time()),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        self._write("UPDATE runs SET finished = ?, status = ?, error = ? WHERE id = ?", (time.time(), status, error, run_id))

    def last_run(self, command: str | None = None) -> RunRecord | None:
        sql = "SELECT id, target, command, selection, started, finished, status, error FROM runs WHERE target = ?"
        args: tuple[Any, ...] = (self.target,)
        if command:
            sql += " AND command = ?"
            args += (command,)
        row = self._db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return RunRecord(*row) if row else None
