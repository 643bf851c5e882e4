"""Named schema migrations, one chain for every backend, applied in order, each once: the
`migrations` table records the names applied (older versions counted them in
`PRAGMA user_version`; the SQLite store reads that once).

A migration is one script for both databases, or one for each where their dialects (or their
histories) differ; a backend that has nothing to do at a step records it all the same.
Never edit a migration that has shipped: append a new one, so every database moves forward
through the same steps. `:root` in a statement is the root folder's absolute path, `:real` the
same with every symlink resolved.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Backend = Literal["sqlite", "postgresql"]


class Migration(NamedTuple):
    name: str
    sqlite: str  # its script for SQLite …
    postgresql: str  # … and for PostgreSQL ("": nothing to do there)

    def statements(self, backend: Backend) -> list[str]:
        """The script's statements for `backend`, one by one (none holds a `;` of its own)."""
        script = self.sqlite if backend == "sqlite" else self.postgresql
        return [statement.strip() for statement in script.split(";") if statement.strip()]


def _both(name: str, script: str) -> Migration:
    """A migration whose script is the same for both databases."""
    return Migration(name, script, script)


def _sqlite(name: str, script: str) -> Migration:
    """A step of SQLite's history from before PostgreSQL (which began where they arrive)."""
    return Migration(name, script, "")


# Costs were pixels × seconds (`cost`), now estimated CPU seconds: a column of their own, so
# that a worker of an older version (which sorts by `cost`) never mixes its figures with these
# (its new files have none here: they are estimated). One script for both databases.
COSTS_IN_SECONDS = _both(
    "costs are estimated CPU seconds",
    """
    ALTER TABLE files ADD COLUMN cpu_cost DOUBLE PRECISION;
    CREATE INDEX files_by_cpu_cost ON files (state, cpu_cost)
    """,
)

# A raw file's whole content, hashed while it is first processed: before `after_done` deletes
# or moves it, what is taken is proven to be what was archived (the fingerprint reads only
# its ends). One script for both databases.
WHOLE_SHA256 = _both(
    "a raw file's whole-content SHA-256",
    "ALTER TABLE files ADD COLUMN sha256 TEXT",
)

# Each claim of a file has a number, one higher than the one before: the name of its work
# folder (`work/files/<id>/claim-<n>/`), which only a later claim renames away.
CLAIMS_NUMBERED = _both(
    "claims of a file are numbered",
    "ALTER TABLE files ADD COLUMN claims INTEGER NOT NULL DEFAULT 0",
)

# Every publishing intent (the destination, size and SHA-256 a claim was about to put
# there), not only the latest that `outputs` and `stream_jobs` hold: a later claim that
# finds an earlier claim's file at a destination knows it for one of its own.
INTENTS_KEPT = _both(
    "every publishing intent is kept",
    """
    CREATE TABLE intents (
        file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        output TEXT NOT NULL,
        path TEXT NOT NULL,
        claim INTEGER NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (file_id, path, claim)
    )
    """,
)

# A re-encoded video stream's measured quality (SSIM against the raw on sampled frames):
# `after_done` lets the raw file go only when every one reaches `archive.min_ssim`. One
# script for both databases.
QUALITY_MEASURED = _both(
    "the measured quality (SSIM) of a re-encoded video stream",
    """
    ALTER TABLE stream_jobs ADD COLUMN ssim_mean DOUBLE PRECISION;
    ALTER TABLE stream_jobs ADD COLUMN ssim_worst DOUBLE PRECISION;
    ALTER TABLE stream_jobs ADD COLUMN ssim_note TEXT
    """,
)

# The claim order said in columns of its own, not in sentinel costs: a rank (`Rank`: 10 a
# file ffprobe cannot read, 20 one without video, 30 the others, 40 one not in raw/ as
# recorded; none: not estimated yet), then `cpu_cost` (only estimated CPU seconds now), and
# the time until which a worker estimates it. Costs of 1e13 and more meant unreadable, of
# 1e12 and more audio only (1e12 added), -1 absent, -2 being estimated. One script for both.
CLAIM_ORDER_IN_COLUMNS = _both(
    "the claim order in columns: a rank, then the cost, and a lease on estimating",
    """
    ALTER TABLE files ADD COLUMN claim_rank INTEGER;
    ALTER TABLE files ADD COLUMN estimating_until DOUBLE PRECISION;
    UPDATE files SET
        claim_rank = CASE WHEN cpu_cost >= 1e13 THEN 10 WHEN cpu_cost >= 1e12 THEN 20
                          WHEN cpu_cost >= 0 THEN 30 WHEN cpu_cost = -1 THEN 40 END,
        cpu_cost = CASE WHEN cpu_cost >= 1e13 THEN NULL WHEN cpu_cost >= 1e12 THEN cpu_cost - 1e12
                        WHEN cpu_cost >= 0 THEN cpu_cost END;
    DROP INDEX files_by_cpu_cost;
    CREATE INDEX files_by_claim_order ON files (state, claim_rank, cpu_cost)
    """,
)

_FILE_STATES = "CHECK (state IN ('pending', 'running', 'done', 'failed'))"
_OUTPUT_STATES = (
    "CHECK (state IN ('pending', 'running', 'publishing', 'done', 'failed', 'skipped'))"
)
_JOB_STATES = "CHECK (state IN ('pending', 'running', 'done', 'failed'))"

# The schema refuses a state that does not exist (`records`: FileState, OutputState, JobState).
# PostgreSQL adds the constraints; SQLite cannot add one to a table, so it builds each table
# again with them (foreign keys are off while migrations run), keeping the number the next
# file's id follows (`sqlite_sequence`: ids of forgotten files are never given out again).
STATES_CHECKED = Migration(
    "the schema refuses states that do not exist",
    f"""
    CREATE TABLE files_checked (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rel_path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        fingerprint TEXT,
        stem TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT files_state_known {_FILE_STATES},
        error TEXT,
        warnings TEXT NOT NULL DEFAULT '[]',
        probe TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        raw_action TEXT,
        error_detail TEXT,
        worker TEXT,
        lease_until REAL,
        cost REAL,
        cpu_cost DOUBLE PRECISION,
        sha256 TEXT,
        claims INTEGER NOT NULL DEFAULT 0,
        claim_rank INTEGER,
        estimating_until DOUBLE PRECISION
    );
    INSERT INTO files_checked SELECT id, rel_path, size, mtime_ns, fingerprint, stem, state,
        error, warnings, probe, created_at, updated_at, raw_action, error_detail, worker,
        lease_until, cost, cpu_cost, sha256, claims, claim_rank, estimating_until FROM files;
    DELETE FROM sqlite_sequence WHERE name = 'files_checked';
    UPDATE sqlite_sequence SET name = 'files_checked' WHERE name = 'files';
    DROP TABLE files;
    ALTER TABLE files_checked RENAME TO files;
    CREATE INDEX files_by_state ON files (state);
    CREATE INDEX files_by_path ON files (rel_path);
    CREATE INDEX files_by_state_time ON files (state, updated_at);
    CREATE INDEX files_by_claim ON files (state, cost);
    CREATE INDEX files_by_worker ON files (worker);
    CREATE INDEX files_by_claim_order ON files (state, claim_rank, cpu_cost);
    CREATE TABLE outputs_checked (
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        output TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT outputs_state_known {_OUTPUT_STATES},
        path TEXT,
        size INTEGER,
        sha256 TEXT,
        error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (file_id, output)
    );
    INSERT INTO outputs_checked SELECT file_id, output, state, path, size, sha256, error,
        updated_at FROM outputs;
    DROP TABLE outputs;
    ALTER TABLE outputs_checked RENAME TO outputs;
    CREATE TABLE stream_jobs_checked (
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        output TEXT NOT NULL,
        stream_index INTEGER NOT NULL,
        stream_type TEXT NOT NULL,
        decision TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT stream_jobs_state_known {_JOB_STATES},
        notes TEXT NOT NULL DEFAULT '[]',
        raw_bytes INTEGER,
        raw_seconds REAL,
        out_bytes INTEGER,
        out_seconds REAL,
        ratio REAL,
        wall_seconds REAL,
        error TEXT,
        updated_at REAL NOT NULL,
        path TEXT,
        sha256 TEXT,
        parts TEXT NOT NULL DEFAULT '[]',
        ssim_mean DOUBLE PRECISION,
        ssim_worst DOUBLE PRECISION,
        ssim_note TEXT,
        PRIMARY KEY (file_id, output, stream_index)
    );
    INSERT INTO stream_jobs_checked SELECT file_id, output, stream_index, stream_type, decision,
        state, notes, raw_bytes, raw_seconds, out_bytes, out_seconds, ratio, wall_seconds,
        error, updated_at, path, sha256, parts, ssim_mean, ssim_worst, ssim_note
        FROM stream_jobs;
    DROP TABLE stream_jobs;
    ALTER TABLE stream_jobs_checked RENAME TO stream_jobs
    """,
    f"""
    ALTER TABLE files ADD CONSTRAINT files_state_known {_FILE_STATES};
    ALTER TABLE outputs ADD CONSTRAINT outputs_state_known {_OUTPUT_STATES};
    ALTER TABLE stream_jobs ADD CONSTRAINT stream_jobs_state_known {_JOB_STATES}
    """,
)

# PostgreSQL began at the schema SQLite's migrations above arrive at, in one step (ids never
# reused: an identity column never hands out a number twice; paths indexed by hash: a btree
# refuses values over about 2.7 kB, and a path may be 4 kB); SQLite has nothing to do here.
POSTGRESQL_BEGAN = Migration(
    "postgresql: files, outputs, stream jobs, controls, workers and progress",
    "",
    """
        CREATE TABLE files (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            rel_path TEXT NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            fingerprint TEXT,
            stem TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            error_detail TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            probe TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            raw_action TEXT,
            worker TEXT,
            lease_until DOUBLE PRECISION,
            cost DOUBLE PRECISION
        );
        CREATE INDEX files_by_state ON files (state);
        CREATE INDEX files_by_path ON files USING hash (rel_path);
        CREATE INDEX files_by_state_time ON files (state, updated_at);
        CREATE INDEX files_by_claim ON files (state, cost);
        CREATE INDEX files_by_worker ON files (worker);
        CREATE TABLE outputs (
            file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            output TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            path TEXT,
            size BIGINT,
            sha256 TEXT,
            error TEXT,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (file_id, output)
        );
        CREATE TABLE stream_jobs (
            file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            output TEXT NOT NULL,
            stream_index INTEGER NOT NULL,
            stream_type TEXT NOT NULL,
            decision TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            notes TEXT NOT NULL DEFAULT '[]',
            raw_bytes BIGINT,
            raw_seconds DOUBLE PRECISION,
            out_bytes BIGINT,
            out_seconds DOUBLE PRECISION,
            ratio DOUBLE PRECISION,
            wall_seconds DOUBLE PRECISION,
            error TEXT,
            updated_at DOUBLE PRECISION NOT NULL,
            path TEXT,
            sha256 TEXT,
            parts TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (file_id, output, stream_index)
        );
        CREATE TABLE controls (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE progress (
            file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            output TEXT NOT NULL,
            worker TEXT NOT NULL,
            done DOUBLE PRECISION NOT NULL,
            total DOUBLE PRECISION,
            speed DOUBLE PRECISION,
            remaining DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (file_id, label)
        )
        """,
)

# A file's history: one row per step (found, claimed, each stream's end, published, given
# back, stopped …), written by the store call that makes the step, at the store's time; and
# what a user asked of a running file (`stop_asked`), which its worker's heartbeat reads.
_EVENTS = """
    CREATE TABLE events (
        id {id},
        file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        worker TEXT,
        text TEXT NOT NULL
    );
    CREATE INDEX events_by_file ON events (file_id, id);
    ALTER TABLE files ADD COLUMN stop_asked TEXT
        CONSTRAINT files_stop_known CHECK (stop_asked IN ('release', 'set aside'))
    """
HISTORY_KEPT = Migration(
    "a file's history, and a stop asked from the web page",
    _EVENTS.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"),
    _EVENTS.format(id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
)

MIGRATIONS: tuple[Migration, ...] = (
    _sqlite(
        "files, outputs and per-stream jobs",
        """
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            rel_path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            stem TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            probe TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (rel_path, size, mtime_ns)
        );
        CREATE INDEX files_by_state ON files (state);
        CREATE INDEX files_by_path ON files (rel_path);
        CREATE TABLE outputs (
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            path TEXT,
            size INTEGER,
            sha256 TEXT,
            error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (file_id, kind)
        );
        CREATE TABLE stream_jobs (
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            output TEXT NOT NULL,
            stream_index INTEGER NOT NULL,
            kind TEXT NOT NULL,
            decision TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            notes TEXT NOT NULL DEFAULT '[]',
            raw_bytes INTEGER,
            raw_seconds REAL,
            out_bytes INTEGER,
            out_seconds REAL,
            ratio REAL,
            wall_seconds REAL,
            error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (file_id, output, stream_index)
        );
        """,
    ),
    _sqlite(
        "where each stream job published its own file (montage JPEGs)",
        """
        ALTER TABLE stream_jobs ADD COLUMN path TEXT;
        ALTER TABLE stream_jobs ADD COLUMN sha256 TEXT;
        """,
    ),
    _sqlite(
        "what happened to the raw file once done (after_done)",
        "ALTER TABLE files ADD COLUMN raw_action TEXT;",
    ),
    _sqlite(
        "the parts of an interrupted stream encode (JSON), so a restart resumes it",
        "ALTER TABLE stream_jobs ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';",
    ),
    _sqlite(
        "the latest finished files, fast: `status` lists them from 100,000",
        "CREATE INDEX IF NOT EXISTS files_by_state_time ON files (state, updated_at);",
    ),
    _sqlite(
        "file ids are never reused (AUTOINCREMENT) and a file is known by its content",
        # Rebuilt the SQLite way (foreign keys are off while migrations run): a plain
        # INTEGER PRIMARY KEY hands a deleted row's id to the next file, which then inherits
        # its work folder. mtime is a hint now, so (rel_path, size, mtime_ns) is no key.
        """
        CREATE TABLE files_v6 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rel_path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            fingerprint TEXT,
            stem TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            probe TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            raw_action TEXT
        );
        INSERT INTO files_v6 (id, rel_path, size, mtime_ns, stem, state, error, warnings, probe,
                              created_at, updated_at, raw_action)
            SELECT id, rel_path, size, mtime_ns, stem, state, error, warnings, probe,
                   created_at, updated_at, raw_action FROM files;
        DROP TABLE files;
        ALTER TABLE files_v6 RENAME TO files;
        CREATE INDEX files_by_state ON files (state);
        CREATE INDEX files_by_path ON files (rel_path);
        CREATE INDEX files_by_state_time ON files (state, updated_at);
        """,
    ),
    _sqlite(
        "a failure's whole text (ffmpeg's stderr), beside its one-line reason",
        "ALTER TABLE files ADD COLUMN error_detail TEXT;",
    ),
    _sqlite(
        "what a user sets for the daemons of a root (a pause)",
        "CREATE TABLE controls (name TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " updated_at REAL NOT NULL);",
    ),
    _sqlite(
        "output and stream type columns each say one thing",
        """
        ALTER TABLE outputs RENAME COLUMN kind TO output;
        ALTER TABLE stream_jobs RENAME COLUMN kind TO stream_type;
        """,
    ),
    _sqlite(
        "workers claim files under leases and write the progress of what they run",
        """
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        ALTER TABLE files ADD COLUMN worker TEXT;
        ALTER TABLE files ADD COLUMN lease_until REAL;
        ALTER TABLE files ADD COLUMN cost REAL;
        CREATE INDEX files_by_claim ON files (state, cost);
        CREATE INDEX files_by_worker ON files (worker);
        CREATE TABLE progress (
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            output TEXT NOT NULL,
            worker TEXT NOT NULL,
            done REAL NOT NULL,
            total REAL,
            speed REAL,
            remaining REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (file_id, label)
        );
        """,
    ),
    _sqlite(
        "published paths are relative to the root",
        """
        UPDATE outputs SET path = substr(path, length(:root) + 2)
            WHERE substr(path, 1, length(:root) + 1) = :root || '/';
        UPDATE outputs SET path = substr(path, length(:real) + 2)
            WHERE substr(path, 1, length(:real) + 1) = :real || '/';
        UPDATE stream_jobs SET path = substr(path, length(:root) + 2)
            WHERE substr(path, 1, length(:root) + 1) = :root || '/';
        UPDATE stream_jobs SET path = substr(path, length(:real) + 2)
            WHERE substr(path, 1, length(:real) + 1) = :real || '/';
        """,
    ),
    POSTGRESQL_BEGAN,
    COSTS_IN_SECONDS,
    WHOLE_SHA256,
    CLAIMS_NUMBERED,
    INTENTS_KEPT,
    QUALITY_MEASURED,
    CLAIM_ORDER_IN_COLUMNS,
    STATES_CHECKED,
    HISTORY_KEPT,
)
