-- 0001_init (PostgreSQL): users and their todos.
--
-- The same schema as migrations/sqlite/0001_init.up.sql in native types:
-- uuid, varchar(255), text, boolean, timestamptz (millisecond values: the
-- server truncates before writing), integer. title uses the "C" collation
-- so that sorting by title is byte (code point) order, as in SQLite, and both
-- backends return the same pages. schema_migrations belongs to the migration
-- runner (src/migrate/migrate.c), not to this file.

CREATE TABLE users (
    id            uuid         NOT NULL PRIMARY KEY,
    email         varchar(255) NOT NULL UNIQUE,
    password_hash text         NOT NULL,
    name          varchar(255),
    is_active     boolean      NOT NULL DEFAULT true,
    created_at    timestamptz  NOT NULL,
    updated_at    timestamptz  NOT NULL
);

CREATE TABLE todos (
    id           uuid         NOT NULL PRIMARY KEY,
    user_id      uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        varchar(255) COLLATE "C" NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    description  text,
    completed    boolean      NOT NULL DEFAULT false,
    completed_at timestamptz,
    created_at   timestamptz  NOT NULL,
    updated_at   timestamptz  NOT NULL,
    version      integer      NOT NULL DEFAULT 1 CHECK (version >= 1)
);

CREATE INDEX todos_user_created ON todos (user_id, created_at, id);
CREATE INDEX todos_user_updated ON todos (user_id, updated_at, id);
CREATE INDEX todos_user_title ON todos (user_id, title, id);
CREATE INDEX todos_user_completed ON todos (user_id, completed);
