-- 0001_init (SQLite): users and their todos.
--
-- Conventions (shared with migrations/postgres/0001_init.up.sql, which must
-- describe the same schema in PostgreSQL types):
--   * ids are canonical lower-case UUID text (36 characters);
--   * booleans are INTEGER 0/1;
--   * timestamps are fixed-width RFC 3339 UTC text with milliseconds
--     ("2026-11-21T07:13:46.123Z", model/timefmt.h), which sorts as text in
--     time order;
--   * STRICT tables, so a value of the wrong type is an error, not a surprise.
-- schema_migrations belongs to the migration runner (src/migrate/migrate.c),
-- not to this file.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    name          TEXT,
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    TEXT    NOT NULL CHECK (length(created_at) = 24),
    updated_at    TEXT    NOT NULL CHECK (length(updated_at) = 24)
) STRICT;

-- A rowid table, not WITHOUT ROWID: a description may hold 10,000
-- characters, far above the ~200-byte rows for which WITHOUT ROWID pays off,
-- and the secondary indexes below then carry an 8-byte rowid instead of the
-- 36-byte id. A benchmark of both layouts (100k rows: insert, get by id,
-- list 20, update) showed no difference beyond run-to-run noise.
CREATE TABLE todos (
    id           TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    description  TEXT,
    completed    INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    completed_at TEXT    CHECK (completed_at IS NULL OR length(completed_at) = 24),
    created_at   TEXT    NOT NULL CHECK (length(created_at) = 24),
    updated_at   TEXT    NOT NULL CHECK (length(updated_at) = 24),
    version      INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1)
) STRICT;

-- One index per list order (the list query filters on user_id and sorts by
-- the column then id, so each of these serves it without a sort step), and
-- one for the completed filter and its count.
CREATE INDEX todos_user_created ON todos (user_id, created_at, id);
CREATE INDEX todos_user_updated ON todos (user_id, updated_at, id);
CREATE INDEX todos_user_title ON todos (user_id, title, id);
CREATE INDEX todos_user_completed ON todos (user_id, completed);
