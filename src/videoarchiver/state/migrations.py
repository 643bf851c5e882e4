"""Named schema migrations, applied in order, each once: the `migrations` table records the
names applied (older versions counted them in `PRAGMA user_version`; the store reads that once).

Never edit a migration that has shipped: append a new one, so every database moves forward
through the same steps. `:root` in a statement is the root folder's absolute path, `:real` the
same with every symlink resolved.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    name: str
    script: str

    def statements(self) -> list[str]:
        """The script's statements, one by one (none holds a `;` of its own)."""
        return [statement.strip() for statement in self.script.split(";") if statement.strip()]


# Costs were pixels × seconds (`cost`), now estimated CPU seconds: a column of their own, so
# that a worker of an older version (which sorts by `cost`) never mixes its figures with these
# (its new files have none here: they are estimated). One script for both databases.
COSTS_IN_SECONDS = Migration(
    "costs are estimated CPU seconds",
    """
    ALTER TABLE files ADD COLUMN cpu_cost DOUBLE PRECISION;
    CREATE INDEX files_by_cpu_cost ON files (state, cpu_cost)
    """,
)

# A raw file's whole content, hashed while it is first processed: before `after_done` deletes
# or moves it, what is taken is proven to be what was archived (the fingerprint reads only
# its ends). One script for both databases.
WHOLE_SHA256 = Migration(
    "a raw file's whole-content SHA-256",
    "ALTER TABLE files ADD COLUMN sha256 TEXT",
)

# Each claim of a file has a number, one higher than the one before: the name of its work
# folder (`work/files/<id>/claim-<n>/`), which only a later claim renames away.
CLAIMS_NUMBERED = Migration(
    "claims of a file are numbered",
    "ALTER TABLE files ADD COLUMN claims INTEGER NOT NULL DEFAULT 0",
)

# Every publishing intent (the destination, size and SHA-256 a claim was about to put
# there), not only the latest that `outputs` and `stream_jobs` hold: a later claim that
# finds an earlier claim's file at a destination knows it for one of its own.
INTENTS_KEPT = Migration(
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
QUALITY_MEASURED = Migration(
    "the measured quality (SSIM) of a re-encoded video stream",
    """
    ALTER TABLE stream_jobs ADD COLUMN ssim_mean DOUBLE PRECISION;
    ALTER TABLE stream_jobs ADD COLUMN ssim_worst DOUBLE PRECISION;
    ALTER TABLE stream_jobs ADD COLUMN ssim_note TEXT
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
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
    Migration(
        "where each stream job published its own file (montage JPEGs)",
        """
        ALTER TABLE stream_jobs ADD COLUMN path TEXT;
        ALTER TABLE stream_jobs ADD COLUMN sha256 TEXT;
        """,
    ),
    Migration(
        "what happened to the raw file once done (after_done)",
        "ALTER TABLE files ADD COLUMN raw_action TEXT;",
    ),
    Migration(
        "the parts of an interrupted stream encode (JSON), so a restart resumes it",
        "ALTER TABLE stream_jobs ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';",
    ),
    Migration(
        "the latest finished files, fast: `status` lists them from 100,000",
        "CREATE INDEX IF NOT EXISTS files_by_state_time ON files (state, updated_at);",
    ),
    Migration(
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
    Migration(
        "a failure's whole text (ffmpeg's stderr), beside its one-line reason",
        "ALTER TABLE files ADD COLUMN error_detail TEXT;",
    ),
    Migration(
        "what a user sets for the daemons of a root (a pause)",
        "CREATE TABLE controls (name TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " updated_at REAL NOT NULL);",
    ),
    Migration(
        "output and stream type columns each say one thing",
        """
        ALTER TABLE outputs RENAME COLUMN kind TO output;
        ALTER TABLE stream_jobs RENAME COLUMN kind TO stream_type;
        """,
    ),
    Migration(
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
    Migration(
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
    COSTS_IN_SECONDS,
    WHOLE_SHA256,
    CLAIMS_NUMBERED,
    INTENTS_KEPT,
    QUALITY_MEASURED,
)

# PostgreSQL starts from the schema SQLite's migrations arrive at (ids never reused: an
# identity column never hands out a number twice; paths indexed by hash: a btree refuses
# values over about 2.7 kB, and a path may be 4 kB).
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "postgresql: files, outputs, stream jobs, controls, workers and progress",
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
    ),
    COSTS_IN_SECONDS,
    WHOLE_SHA256,
    CLAIMS_NUMBERED,
    INTENTS_KEPT,
    QUALITY_MEASURED,
)
