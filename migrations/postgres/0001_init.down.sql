-- 0001_init (PostgreSQL), reversed: drops everything the up file creates.
DROP INDEX IF EXISTS todos_user_completed;
DROP INDEX IF EXISTS todos_user_title;
DROP INDEX IF EXISTS todos_user_updated;
DROP INDEX IF EXISTS todos_user_created;
DROP TABLE IF EXISTS todos;
DROP TABLE IF EXISTS users;
