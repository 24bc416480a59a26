"""The results store: SQLite (WAL, busy timeout) under the root, one row per run and per evaluation."""
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from distillbench.errors import DistillbenchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, method TEXT NOT NULL, dataset TEXT NOT NULL, ipc INTEGER NOT NULL,
    seed INTEGER NOT NULL, path TEXT NOT NULL, manifest TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, method TEXT NOT NULL, dataset TEXT NOT NULL,
    ipc INTEGER NOT NULL, student TEXT NOT NULL, protocol TEXT NOT NULL, seed INTEGER NOT NULL,
    final_acc REAL NOT NULL, best_acc REAL, seconds REAL, record TEXT NOT NULL, created REAL NOT NULL,
    identity TEXT);
"""
EVALUATION_COLUMNS = ("run_id", "method", "dataset", "ipc", "student", "protocol", "seed",
                      "final_acc", "best_acc", "seconds", "identity")


class Store:
    """The store under ``root``.  Writing creates it; reading a root that has none finds nothing and leaves
    nothing behind (so a mistyped ``--root`` does not turn into an empty store)."""

    def __init__(self, root: Path):
        self.path = Path(root) / "results.sqlite"
        self._prepared = False

    @contextmanager
    def _connect(self, write: bool = True):
        if not write and not self.path.exists():
            db = sqlite3.connect(":memory:")
            self._prepare(db)
        else:
            db = self._open()
        try:
            with db:
                yield db
        finally:
            db.close()

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=60000")
            if not self._prepared:
                self._prepare(db)
                self._prepared = True
        except sqlite3.DatabaseError as exc:
            db.close()
            fix = ("check its permissions and whether another process holds it"
                   if isinstance(exc, sqlite3.OperationalError)  # locked, unreadable: the file itself may be fine
                   else "move it aside and run again (a new store is started; distilled sets under runs/ are kept)")
            raise DistillbenchError(f"the results store {self.path} cannot be opened ({exc}); {fix}")
        return db

    @staticmethod
    def _prepare(db) -> None:
        db.executescript(SCHEMA)
        if "identity" not in {row[1] for row in db.execute("PRAGMA table_info(evaluations)")}:
            db.execute("ALTER TABLE evaluations ADD COLUMN identity TEXT")  # stores from before it existed
        db.execute("CREATE INDEX IF NOT EXISTS evaluations_identity ON evaluations (identity)")

    def record_run(self, run_id: str, path: Path, manifest: dict) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                       (run_id, manifest["method"], manifest["dataset"], manifest["ipc"], manifest["seed"],
                        str(path), json.dumps(manifest, sort_keys=True), time.time()))

    def run(self, run_id: str):
        with self._connect(write=False) as db:
            row = db.execute("SELECT path, manifest FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else (Path(row[0]), json.loads(row[1]))

    def run_ids(self) -> list[str]:
        with self._connect(write=False) as db:
            return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY created")]

    def record_evaluation(self, record: dict) -> None:
        with self._connect() as db:
            db.execute(f"INSERT INTO evaluations ({', '.join(EVALUATION_COLUMNS)}, record, created) "
                       f"VALUES ({', '.join('?' * (len(EVALUATION_COLUMNS) + 2))})",
                       [record.get(c) for c in EVALUATION_COLUMNS] + [json.dumps(record, sort_keys=True), time.time()])

    def recorded_evaluation(self, identity: str):
        """The latest record with this identity (see :func:`distillbench.evaluator.identity`), or None."""
        with self._connect(write=False) as db:
            row = db.execute("SELECT record FROM evaluations WHERE identity = ? ORDER BY id DESC LIMIT 1",
                             (identity,)).fetchone()
        return None if row is None else json.loads(row[0])

    def merge(self, source: "Store", run_path) -> tuple[int, int]:
        """Copy in what ``source`` recorded and this store lacks: runs by id, each recorded at
        ``run_path(run_id, recorded_path)``, and evaluations by identity (by the whole record for ones from
        before identities).  Returns how many runs and evaluations were copied."""
        runs, evaluations = source._rows("runs"), source._rows("evaluations")
        with self._connect() as db:
            known_runs = {row[0] for row in db.execute("SELECT run_id FROM runs")}
            known = {row[0] for row in db.execute("SELECT COALESCE(identity, record) FROM evaluations")}
            new_runs = [run for run in runs if run["run_id"] not in known_runs]
            db.executemany("INSERT INTO runs VALUES (:run_id, :method, :dataset, :ipc, :seed, :path, :manifest, "
                           ":created)", [{**run, "path": str(run_path(run["run_id"], Path(run["path"])))}
                                         for run in new_runs])
            new = [row for row in evaluations if (row["identity"] or row["record"]) not in known]
            columns = (*EVALUATION_COLUMNS, "record", "created")
            db.executemany(f"INSERT INTO evaluations ({', '.join(columns)}) "
                           f"VALUES ({', '.join(':' + c for c in columns)})", new)
        return len(new_runs), len(new)

    def _rows(self, table: str) -> list[dict]:
        with self._connect(write=False) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]

    def evaluations(self, dataset=None, protocol=None, run_id=None, with_records: bool = False):
        """Evaluation rows as a pandas DataFrame (optionally of one dataset, protocol or run), the latest of
        each identity, with the accuracy its protocol reports (``reported_acc``: the final or the best, as the
        protocol's source does), the protocol's version, the kind of labels the record names (``hard`` for
        hard-label protocols), the protocol settings the evaluation overrode (``--set``; empty for records from before
        they were recorded) and the resolved method options, their defaults and model checksums of their run
        (empty dicts for sets that were not distilled here); ``with_records``: each whole record too (``record``)."""
        import pandas as pd
        columns = ", ".join(f"e.{c}" for c in EVALUATION_COLUMNS)
        query = (f"SELECT {columns}, COALESCE(json_extract(e.record, '$.reported_acc'), e.final_acc), "
                 "json_extract(e.record, '$.protocol_resolved.version'), json_extract(e.record, '$.labels'), "
                 "json_extract(e.record, '$.protocol_overrides'), "
                 "e.record, r.manifest FROM evaluations e LEFT JOIN runs r ON e.run_id = r.run_id")
        filters = {column: value for column, value in (("dataset", dataset), ("protocol", protocol),
                                                       ("run_id", run_id)) if value}
        if filters:
            query += " WHERE " + " AND ".join(f"e.{column} = ?" for column in filters)
        with self._connect(write=False) as db:
            rows = db.execute(query + " ORDER BY e.id", tuple(filters.values())).fetchall()
        df = pd.DataFrame([row[:-2] for row in rows],
                          columns=[*EVALUATION_COLUMNS, "reported_acc", "protocol_version", "labels",
                                   "protocol_overrides"])
        df["protocol_overrides"] = [json.loads(o) if isinstance(o, str) else {} for o in df["protocol_overrides"]]
        if with_records:
            df["record"] = [json.loads(row[-2]) for row in rows]
        manifests = [json.loads(row[-1]) if row[-1] else {} for row in rows]
        df["options"] = [m.get("options", {}) for m in manifests]
        df["option_defaults"] = [m.get("option_defaults", {}) for m in manifests]
        df["models"] = [m.get("inputs", {}).get("models", {}) for m in manifests]
        repeated = df["identity"].notna() & df["identity"].duplicated(keep="last")
        return df[~repeated].reset_index(drop=True)
