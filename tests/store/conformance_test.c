/*
 * The store contract (src/store/store.h), driven through store.h only, on a
 * real h2o evloop. Every test runs against DATABASE_URL when it is set (any
 * backend; tests create their own users, so a shared database is fine), or
 * else against a fresh temporary SQLite file under TEST_TMPDIR (or /tmp).
 * The few tests that look inside the SQLite file or call the migration
 * runner directly skip themselves on other backends.
 *
 * Every test ends with store_worker_detach + store_close() == 0, and the
 * sanitizer build turns any leaked operation into a failure.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "model/uuid.h"
#include "store/sqlite_common.h"
#include "store/store.h"

#define T0 1800000000000LL /* a fixed clock for todos: 2027-01-15 */

/* ---- environment -------------------------------------------------------- */

struct env {
    char url[PATH_MAX + 64];
    char dir[PATH_MAX]; /* temp dir of our own SQLite file; "" with DATABASE_URL */
    char path[PATH_MAX + 16];
    struct store *s;
    h2o_loop_t *loop;
    struct store_worker *w;
};

static struct env E;

/* Set while a submit call runs on this thread: `done` must never see it. */
static _Thread_local bool in_submit;
static atomic_int done_inside_submit;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_sqlite(void)
{
    return E.dir[0] != '\0';
}

static struct store *open_store(bool migrate)
{
    char err[512];
    struct store *s = store_open(E.url, migrate, err, sizeof(err));

    cr_assert_not_null(s, "store_open(%s): %s", E.url, err);
    return s;
}

static void env_setup(void)
{
    const char *url = getenv("DATABASE_URL");

    cr_assert_eq(sodium_init() >= 0, true);
    memset(&E, 0, sizeof(E));
    atomic_store(&done_inside_submit, 0);
    if (url != NULL && url[0] != '\0') {
        snprintf(E.url, sizeof(E.url), "%s", url);
    } else {
        const char *tmp = getenv("TEST_TMPDIR");
        char rel[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s/store-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
        cr_assert_not_null(mkdtemp(rel));
        cr_assert_not_null(realpath(rel, E.dir));
        snprintf(E.path, sizeof(E.path), "%s/todo.db", E.dir);
        snprintf(E.url, sizeof(E.url), "sqlite:///%s", E.path); /* absolute: 4 slashes */
    }
    E.s = open_store(true);
    E.loop = h2o_evloop_create();
    E.w = store_worker_attach(E.s, E.loop);
    cr_assert_not_null(E.w);
}

static void remove_db_files(void)
{
    char p[PATH_MAX + 32];

    if (!is_sqlite())
        return;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", E.path, suffixes[i]);
        unlink(p);
    }
    rmdir(E.dir);
}

static void env_teardown(void)
{
    if (E.w != NULL) {
        store_worker_detach(E.w);
        E.w = NULL;
    }
    if (E.loop != NULL) {
        h2o_evloop_destroy(E.loop);
        E.loop = NULL;
    }
    if (E.s != NULL) {
        int rc = store_close(E.s);
        E.s = NULL;
        cr_expect_eq(rc, 0, "store_close: %d (an operation leaked?)", rc);
    }
    remove_db_files();
    cr_expect_eq(atomic_load(&done_inside_submit), 0, "done ran inside a submit call");
}

TestSuite(store, .init = env_setup, .fini = env_teardown, .timeout = 120);

/* ---- results ------------------------------------------------------------ */

/* Deep copies: the result is borrowed only while `done` runs. */
struct tcopy {
    char id[UUID_STR_LEN + 1];
    char user_id[UUID_STR_LEN + 1];
    char *title;
    char *description;
    bool completed, has_completed_at;
    int64_t completed_at_ms, created_at_ms, updated_at_ms;
    int32_t version;
};

struct ucopy {
    char id[UUID_STR_LEN + 1];
    char *email, *password_hash, *name;
    bool is_active;
    int64_t created_at_ms, updated_at_ms;
};

struct box {
    int calls;
    int status;
    char message[256];
    bool created;
    bool has_todo, has_user;
    struct tcopy todo;
    struct ucopy user;
    struct tcopy *todos;
    size_t ntodos;
    int64_t total;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void tcopy_set(struct tcopy *c, const struct todo *t)
{
    memcpy(c->id, t->id, sizeof(c->id));
    memcpy(c->user_id, t->user_id, sizeof(c->user_id));
    c->title = dup_or_null(t->title);
    c->description = dup_or_null(t->description);
    c->completed = t->completed;
    c->has_completed_at = t->has_completed_at;
    c->completed_at_ms = t->completed_at_ms;
    c->created_at_ms = t->created_at_ms;
    c->updated_at_ms = t->updated_at_ms;
    c->version = t->version;
}

static void tcopy_free(struct tcopy *c)
{
    free(c->title);
    free(c->description);
    c->title = c->description = NULL;
}

static void box_free(struct box *b)
{
    tcopy_free(&b->todo);
    free(b->user.email);
    free(b->user.password_hash);
    free(b->user.name);
    for (size_t i = 0; i < b->ntodos; i++)
        tcopy_free(&b->todos[i]);
    free(b->todos);
    memset(b, 0, sizeof(*b));
}

static void on_done(void *ctx, const struct store_result *res)
{
    struct box *b = ctx;

    if (in_submit)
        atomic_fetch_add(&done_inside_submit, 1);
    b->calls++;
    if (b->calls > 1)
        return; /* counted; the test fails on calls != 1 */
    b->status = res->status;
    snprintf(b->message, sizeof(b->message), "%s", res->message ? res->message : "");
    b->created = res->created;
    if (res->todo != NULL) {
        b->has_todo = true;
        tcopy_set(&b->todo, res->todo);
    }
    if (res->user != NULL) {
        b->has_user = true;
        memcpy(b->user.id, res->user->id, sizeof(b->user.id));
        b->user.email = dup_or_null(res->user->email);
        b->user.password_hash = dup_or_null(res->user->password_hash);
        b->user.name = dup_or_null(res->user->name);
        b->user.is_active = res->user->is_active;
        b->user.created_at_ms = res->user->created_at_ms;
        b->user.updated_at_ms = res->user->updated_at_ms;
    }
    if (res->ntodos > 0) {
        b->todos = calloc(res->ntodos, sizeof(*b->todos));
        for (size_t i = 0; i < res->ntodos; i++)
            tcopy_set(&b->todos[i], &res->todos[i]);
    }
    b->ntodos = res->ntodos;
    b->total = res->total;
}

/* Run the loop until `b` got its completion, then a little longer to catch a
 * second one. */
static void wait_box(struct box *b)
{
    int64_t deadline = mono_ms() + 20000;

    while (b->calls == 0 && mono_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    cr_assert_eq(b->calls, 1, "done called %d times", b->calls);
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(E.loop, 0);
    cr_assert_eq(b->calls, 1, "done called %d times", b->calls);
}

/* Submit `call` (an expression using E.w, on_done and b) and wait: the
 * status, or the submit call's negative return. */
#define RUN(b, call)                                                                               \
    ({                                                                                             \
        in_submit = true;                                                                          \
        int rc_ = (call);                                                                          \
        in_submit = false;                                                                         \
        cr_assert_eq((b)->calls, 0, "done ran inside the submit call");                            \
        if (rc_ == 0)                                                                              \
            wait_box(b);                                                                           \
        rc_ == 0 ? (b)->status : rc_;                                                              \
    })

/* ---- operation helpers -------------------------------------------------- */

static void new_uuid(char out[UUID_STR_LEN + 1])
{
    uuid_v7(timefmt_now_ms(), out);
}

/* A fresh user; returns its id. */
static void make_user(char id[UUID_STR_LEN + 1])
{
    char email[128];
    struct box b = {0};

    new_uuid(id);
    snprintf(email, sizeof(email), "u-%s@example.test", id);
    struct user_new u = {.id = id, .email = email, .password_hash = "$argon2id$x", .name = NULL,
                         .now_ms = T0};
    cr_assert_eq(RUN(&b, store_user_create(E.w, &u, on_done, &b, NULL)), STORE_OK, "%s",
                 b.message);
    box_free(&b);
}

/* A complete (create/PUT) patch; free with todo_patch_free. */
static struct todo_patch full_patch(const char *title, const char *description, bool completed)
{
    return (struct todo_patch){
        .has_title = true,
        .has_description = true,
        .has_completed = true,
        .completed = completed,
        .title = strdup(title),
        .description = dup_or_null(description),
    };
}

static int todo_create(const char *user, const char *id, const char *title, const char *desc,
                       bool completed, int64_t now, struct box *b)
{
    struct todo_patch p = full_patch(title, desc, completed);
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = now};
    int rc = RUN(b, store_todo_create(E.w, &wr, on_done, b, NULL));

    todo_patch_free(&p);
    return rc;
}

/* Create a todo with a fresh id; asserts OK and returns the id in `id`. */
static void add_todo(const char *user, const char *title, const char *desc, bool completed,
                     int64_t now, char id[UUID_STR_LEN + 1])
{
    struct box b = {0};

    new_uuid(id);
    cr_assert_eq(todo_create(user, id, title, desc, completed, now, &b), STORE_OK, "%s",
                 b.message);
    box_free(&b);
}

static int todo_get(const char *user, const char *id, struct box *b)
{
    return RUN(b, store_todo_get(E.w, user, id, on_done, b, NULL));
}

static int todo_put(const char *user, const char *id, const char *title, const char *desc,
                    bool completed, int32_t if_match, int64_t now, struct box *b)
{
    struct todo_patch p = full_patch(title, desc, completed);
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p, .if_match = if_match,
                            .now_ms = now};
    int rc = RUN(b, store_todo_put(E.w, &wr, on_done, b, NULL));

    todo_patch_free(&p);
    return rc;
}

/* PATCH the title only (NULL: an empty patch). */
static int todo_patch_title(const char *user, const char *id, const char *title, int32_t if_match,
                            int64_t now, struct box *b)
{
    struct todo_patch p = {.has_title = title != NULL, .title = dup_or_null(title)};
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p, .if_match = if_match,
                            .now_ms = now};
    int rc = RUN(b, store_todo_patch(E.w, &wr, on_done, b, NULL));

    todo_patch_free(&p);
    return rc;
}

static int todo_patch_completed(const char *user, const char *id, bool completed, int64_t now,
                                struct box *b)
{
    struct todo_patch p = {.has_completed = true, .completed = completed};
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = now};

    return RUN(b, store_todo_patch(E.w, &wr, on_done, b, NULL));
}

static int todo_delete(const char *user, const char *id, int32_t if_match, struct box *b)
{
    struct todo_write wr = {.user_id = user, .id = id, .if_match = if_match, .now_ms = T0};

    return RUN(b, store_todo_delete(E.w, &wr, on_done, b, NULL));
}

static int todo_list(const char *user, int limit, int64_t offset, int completed, const char *q,
                     enum todo_sort sort, struct box *b)
{
    struct todo_query tq = {.user_id = user, .limit = limit, .offset = offset,
                            .completed = completed, .q = q, .sort = sort};

    return RUN(b, store_todo_list(E.w, &tq, on_done, b, NULL));
}

/* ---- basics ------------------------------------------------------------- */

Test(store, ping_and_backend_name)
{
    struct box b = {0};

    cr_assert_eq(RUN(&b, store_ping(E.w, on_done, &b, NULL)), STORE_OK);
    cr_assert_not_null(store_backend_name(E.s));
    if (is_sqlite())
        cr_assert_str_eq(store_backend_name(E.s), "sqlite");
    cr_assert_eq(store_worker_outstanding(E.w), 0);
}

Test(store, ping_says_unavailable_when_the_schema_is_not_current)
{
    struct box b = {0};
    sqlite3 *db;

    if (!is_sqlite())
        cr_skip_test("edits the SQLite file behind the store's back");
    cr_assert_eq(sqlite3_open_v2(E.path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM schema_migrations", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(RUN(&b, store_ping(E.w, on_done, &b, NULL)), STORE_UNAVAILABLE);
    cr_assert_not_null(strstr(b.message, "schema"), "%s", b.message);
    box_free(&b);
    cr_assert_eq(store_schema_current(E.s), STORE_UNAVAILABLE);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE schema_migrations", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(RUN(&b, store_ping(E.w, on_done, &b, NULL)), STORE_UNAVAILABLE);
    box_free(&b);
    sqlite3_close(db);
    /* Migrating again makes it ready again (0001 itself then fails: its
     * tables exist, so the store refuses to open rather than pretend). */
    char err[512];
    struct store *s2 = store_open(E.url, true, err, sizeof(err));
    cr_assert_null(s2);
    cr_assert_not_null(strstr(err, "0001_init.up.sql: "), "%s", err);
}

Test(store, strerror_names_every_status)
{
    const int all[] = {STORE_OK, STORE_NOT_FOUND, STORE_CONFLICT, STORE_PRECONDITION_FAILED,
                       STORE_INVALID, STORE_UNAVAILABLE, STORE_INTERNAL};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(store_strerror(all[i]), store_strerror(all[j]));
    }
    cr_assert_str_eq(store_strerror(STORE_NOT_FOUND), "not found");
}

Test(store, open_rejects_unknown_scheme_and_bad_url)
{
    char err[256] = "";

    cr_assert_null(store_open("mysql://x/y", true, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_null(store_open("not a url", true, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
}

Test(store, close_refuses_while_a_worker_is_attached)
{
    cr_assert_eq(store_close(E.s), -EBUSY);
    /* The store is still usable. */
    struct box b = {0};
    cr_assert_eq(RUN(&b, store_ping(E.w, on_done, &b, NULL)), STORE_OK);
}

/* ---- users -------------------------------------------------------------- */

Test(store, user_create_lookup_and_conflict)
{
    char id[UUID_STR_LEN + 1], id2[UUID_STR_LEN + 1], email[128];
    struct box b = {0};

    new_uuid(id);
    snprintf(email, sizeof(email), "alice-%s@example.test", id);
    struct user_new u = {.id = id, .email = email, .password_hash = "$argon2id$v=19$abc",
                         .name = "Alice", .now_ms = T0 + 5};
    cr_assert_eq(RUN(&b, store_user_create(E.w, &u, on_done, &b, NULL)), STORE_OK, "%s",
                 b.message);
    cr_assert(b.has_user);
    cr_assert_str_eq(b.user.id, id);
    cr_assert_str_eq(b.user.email, email);
    box_free(&b);

    cr_assert_eq(RUN(&b, store_user_by_email(E.w, email, on_done, &b, NULL)), STORE_OK);
    cr_assert_str_eq(b.user.id, id);
    cr_assert_str_eq(b.user.password_hash, "$argon2id$v=19$abc");
    cr_assert_str_eq(b.user.name, "Alice");
    cr_assert(b.user.is_active);
    cr_assert_eq(b.user.created_at_ms, T0 + 5);
    cr_assert_eq(b.user.updated_at_ms, T0 + 5);
    box_free(&b);

    cr_assert_eq(RUN(&b, store_user_by_id(E.w, id, on_done, &b, NULL)), STORE_OK);
    cr_assert_str_eq(b.user.email, email);
    box_free(&b);

    /* Same email, new id: the UNIQUE constraint answers CONFLICT. */
    new_uuid(id2);
    u.id = id2;
    u.name = NULL;
    cr_assert_eq(RUN(&b, store_user_create(E.w, &u, on_done, &b, NULL)), STORE_CONFLICT);
    cr_assert_not(b.has_user);
    box_free(&b);

    cr_assert_eq(RUN(&b, store_user_by_email(E.w, "nobody-at-all@example.test", on_done, &b,
                                             NULL)),
                 STORE_NOT_FOUND);
    cr_assert_not(b.has_user);
    box_free(&b);
    cr_assert_eq(RUN(&b, store_user_by_id(E.w, id2, on_done, &b, NULL)), STORE_NOT_FOUND);
    box_free(&b);
}

Test(store, user_name_null_round_trips)
{
    char id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(id);
    cr_assert_eq(RUN(&b, store_user_by_id(E.w, id, on_done, &b, NULL)), STORE_OK);
    cr_assert_null(b.user.name);
    box_free(&b);
}

Test(store, user_set_password_hash)
{
    char id[UUID_STR_LEN + 1], other[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(id);
    cr_assert_eq(RUN(&b, store_user_set_password_hash(E.w, id, "$argon2id$new", T0 + 99, on_done,
                                                      &b, NULL)),
                 STORE_OK, "%s", b.message);
    box_free(&b);
    cr_assert_eq(RUN(&b, store_user_by_id(E.w, id, on_done, &b, NULL)), STORE_OK);
    cr_assert_str_eq(b.user.password_hash, "$argon2id$new");
    cr_assert_eq(b.user.updated_at_ms, T0 + 99);
    cr_assert_eq(b.user.created_at_ms, T0);
    box_free(&b);

    new_uuid(other);
    cr_assert_eq(RUN(&b, store_user_set_password_hash(E.w, other, "$x", T0, on_done, &b, NULL)),
                 STORE_NOT_FOUND);
    box_free(&b);
}

/* ---- todos: single-row operations --------------------------------------- */

Test(store, todo_create_then_get)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    new_uuid(id);
    cr_assert_eq(todo_create(user, id, "Buy milk", "2 litres", false, T0 + 1, &b), STORE_OK, "%s",
                 b.message);
    cr_assert(b.has_todo);
    cr_assert(b.created);
    cr_assert_str_eq(b.todo.id, id);
    cr_assert_str_eq(b.todo.title, "Buy milk");
    cr_assert_eq(b.todo.version, 1);
    box_free(&b);

    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.id, id);
    cr_assert_str_eq(b.todo.user_id, user);
    cr_assert_str_eq(b.todo.title, "Buy milk");
    cr_assert_str_eq(b.todo.description, "2 litres");
    cr_assert_not(b.todo.completed);
    cr_assert_not(b.todo.has_completed_at);
    cr_assert_eq(b.todo.created_at_ms, T0 + 1);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 1);
    cr_assert_eq(b.todo.version, 1);
    box_free(&b);

    /* Completed at creation: completed_at = now; a null description stays null. */
    new_uuid(id);
    cr_assert_eq(todo_create(user, id, "Done already", NULL, true, T0 + 2, &b), STORE_OK);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert(b.todo.completed);
    cr_assert(b.todo.has_completed_at);
    cr_assert_eq(b.todo.completed_at_ms, T0 + 2);
    cr_assert_null(b.todo.description);
    box_free(&b);
}

Test(store, todo_create_duplicate_id_conflicts)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    add_todo(user, "first", NULL, false, T0, id);
    cr_assert_eq(todo_create(user, id, "second", NULL, false, T0 + 1, &b), STORE_CONFLICT);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "first");
    box_free(&b);
}

Test(store, todo_missing_is_not_found)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    new_uuid(id);
    cr_assert_eq(todo_get(user, id, &b), STORE_NOT_FOUND);
    cr_assert_not(b.has_todo);
    box_free(&b);
    cr_assert_eq(todo_patch_title(user, id, "x", STORE_IF_MATCH_NONE, T0, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_patch_title(user, id, "x", 1, T0, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_delete(user, id, STORE_IF_MATCH_NONE, &b), STORE_NOT_FOUND);
    box_free(&b);
    /* A garbage id is simply not there. */
    cr_assert_eq(todo_get(user, "not-a-uuid", &b), STORE_NOT_FOUND);
    box_free(&b);
}

Test(store, todo_title_too_long_is_invalid)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1], title[600];
    struct box b = {0};

    make_user(user);
    memset(title, 'x', 256);
    title[256] = '\0';
    new_uuid(id);
    cr_assert_eq(todo_create(user, id, title, NULL, false, T0, &b), STORE_INVALID);
    box_free(&b);
    /* 255 characters of two bytes each are fine: the limit counts characters. */
    for (int i = 0; i < 255; i++)
        memcpy(title + 2 * i, "\xc3\xa9", 2);
    title[510] = '\0';
    cr_assert_eq(todo_create(user, id, title, NULL, false, T0, &b), STORE_OK, "%s", b.message);
    box_free(&b);
}

Test(store, todo_put_creates_then_replaces)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    new_uuid(id);
    cr_assert_eq(todo_put(user, id, "v1", "d", true, STORE_IF_MATCH_NONE, T0, &b), STORE_OK, "%s",
                 b.message);
    cr_assert(b.created);
    cr_assert_eq(b.todo.version, 1);
    cr_assert(b.todo.completed);
    box_free(&b);

    /* Replace: omitted fields go back to their defaults (the caller's
     * complete patch says so), version +1, created_at kept. */
    cr_assert_eq(todo_put(user, id, "v2", NULL, false, STORE_IF_MATCH_NONE, T0 + 10, &b),
                 STORE_OK);
    cr_assert_not(b.created);
    cr_assert_eq(b.todo.version, 2);
    cr_assert_str_eq(b.todo.title, "v2");
    cr_assert_null(b.todo.description);
    cr_assert_not(b.todo.completed);
    cr_assert_not(b.todo.has_completed_at);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "v2");
    cr_assert_null(b.todo.description);
    cr_assert_eq(b.todo.version, 2);
    cr_assert_eq(b.todo.created_at_ms, T0);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 10);
    box_free(&b);

    /* The same representation again is a no-op: nothing moves. */
    cr_assert_eq(todo_put(user, id, "v2", NULL, false, STORE_IF_MATCH_NONE, T0 + 20, &b),
                 STORE_OK);
    cr_assert_not(b.created);
    cr_assert_eq(b.todo.version, 2);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 10);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 10);
    box_free(&b);
}

Test(store, todo_patch_changes_only_what_it_names)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    add_todo(user, "title", "desc", false, T0, id);
    cr_assert_eq(todo_patch_completed(user, id, true, T0 + 5, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 2);
    cr_assert(b.todo.completed);
    cr_assert_eq(b.todo.completed_at_ms, T0 + 5);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "title");
    cr_assert_str_eq(b.todo.description, "desc");
    cr_assert(b.todo.completed);
    cr_assert(b.todo.has_completed_at);
    cr_assert_eq(b.todo.completed_at_ms, T0 + 5);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 5);
    cr_assert_eq(b.todo.version, 2);
    box_free(&b);

    /* An empty patch and a same-value patch are no-ops. */
    cr_assert_eq(todo_patch_title(user, id, NULL, STORE_IF_MATCH_NONE, T0 + 6, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 2);
    box_free(&b);
    cr_assert_eq(todo_patch_title(user, id, "title", STORE_IF_MATCH_NONE, T0 + 7, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 2);
    cr_assert_eq(b.todo.updated_at_ms, T0 + 5);
    box_free(&b);

    cr_assert_eq(todo_patch_completed(user, id, false, T0 + 8, &b), STORE_OK);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_not(b.todo.completed);
    cr_assert_not(b.todo.has_completed_at);
    cr_assert_eq(b.todo.version, 3);
    box_free(&b);
}

Test(store, todo_delete)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    add_todo(user, "bye", NULL, false, T0, id);
    cr_assert_eq(todo_delete(user, id, STORE_IF_MATCH_NONE, &b), STORE_OK);
    cr_assert_not(b.has_todo);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_delete(user, id, STORE_IF_MATCH_NONE, &b), STORE_NOT_FOUND);
    box_free(&b);
}

/* ---- If-Match ------------------------------------------------------------ */

Test(store, if_match_mismatch_changes_nothing)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    add_todo(user, "orig", "d", false, T0, id);

    cr_assert_eq(todo_patch_title(user, id, "new", 7, T0 + 1, &b), STORE_PRECONDITION_FAILED);
    cr_assert_not(b.has_todo);
    box_free(&b);
    cr_assert_eq(todo_put(user, id, "new", NULL, true, 2, T0 + 1, &b), STORE_PRECONDITION_FAILED);
    box_free(&b);
    cr_assert_eq(todo_delete(user, id, 3, &b), STORE_PRECONDITION_FAILED);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "orig");
    cr_assert_str_eq(b.todo.description, "d");
    cr_assert_eq(b.todo.version, 1);
    cr_assert_eq(b.todo.updated_at_ms, T0);
    box_free(&b);

    /* The right version, then `*`, succeed. */
    cr_assert_eq(todo_patch_title(user, id, "new", 1, T0 + 2, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 2);
    box_free(&b);
    cr_assert_eq(todo_put(user, id, "newer", NULL, false, STORE_IF_MATCH_ANY, T0 + 3, &b),
                 STORE_OK);
    cr_assert_not(b.created);
    cr_assert_eq(b.todo.version, 3);
    box_free(&b);
    cr_assert_eq(todo_delete(user, id, 3, &b), STORE_OK);
    box_free(&b);
}

Test(store, if_match_on_a_missing_todo)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    new_uuid(id);
    /* PUT with If-Match asks for an existing representation: no insert. */
    cr_assert_eq(todo_put(user, id, "x", NULL, false, STORE_IF_MATCH_ANY, T0, &b),
                 STORE_PRECONDITION_FAILED);
    box_free(&b);
    cr_assert_eq(todo_put(user, id, "x", NULL, false, 1, T0, &b), STORE_PRECONDITION_FAILED);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_delete(user, id, STORE_IF_MATCH_ANY, &b), STORE_NOT_FOUND);
    box_free(&b);
}

/* ---- ownership ------------------------------------------------------------ */

Test(store, another_users_todo_is_not_found_and_never_written)
{
    char alice[UUID_STR_LEN + 1], bob[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(alice);
    make_user(bob);
    add_todo(alice, "alice's", "private", false, T0, id);

    cr_assert_eq(todo_get(bob, id, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_put(bob, id, "mine now", NULL, true, STORE_IF_MATCH_NONE, T0 + 1, &b),
                 STORE_NOT_FOUND);
    cr_assert_not(b.created);
    box_free(&b);
    cr_assert_eq(todo_put(bob, id, "mine now", NULL, true, 1, T0 + 1, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_patch_title(bob, id, "mine now", STORE_IF_MATCH_NONE, T0 + 1, &b),
                 STORE_NOT_FOUND);
    box_free(&b);
    /* A wrong If-Match on someone else's todo still says NOT_FOUND (no
     * information leaks through 412). */
    cr_assert_eq(todo_patch_title(bob, id, "mine now", 9, T0 + 1, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_delete(bob, id, STORE_IF_MATCH_NONE, &b), STORE_NOT_FOUND);
    box_free(&b);
    cr_assert_eq(todo_create(bob, id, "same id", NULL, false, T0 + 1, &b), STORE_CONFLICT);
    box_free(&b);

    cr_assert_eq(todo_get(alice, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "alice's");
    cr_assert_str_eq(b.todo.user_id, alice);
    cr_assert_eq(b.todo.version, 1);
    box_free(&b);
    cr_assert_eq(todo_list(bob, 100, 0, -1, NULL, TODO_SORT_CREATED_AT_DESC, &b), STORE_OK);
    cr_assert_eq(b.ntodos, 0);
    cr_assert_eq(b.total, 0);
    box_free(&b);
}

/* ---- lists --------------------------------------------------------------- */

static enum todo_sort cmp_sort;

static int cmp_tcopy(const void *pa, const void *pb)
{
    const struct tcopy *a = pa, *b = pb;
    int c = 0;
    bool desc = cmp_sort == TODO_SORT_CREATED_AT_DESC || cmp_sort == TODO_SORT_UPDATED_AT_DESC ||
                cmp_sort == TODO_SORT_TITLE_DESC;

    switch (cmp_sort) {
    case TODO_SORT_CREATED_AT:
    case TODO_SORT_CREATED_AT_DESC:
        c = (a->created_at_ms > b->created_at_ms) - (a->created_at_ms < b->created_at_ms);
        break;
    case TODO_SORT_UPDATED_AT:
    case TODO_SORT_UPDATED_AT_DESC:
        c = (a->updated_at_ms > b->updated_at_ms) - (a->updated_at_ms < b->updated_at_ms);
        break;
    case TODO_SORT_TITLE:
    case TODO_SORT_TITLE_DESC:
        c = strcmp(a->title, b->title);
        break;
    }
    if (c == 0)
        c = strcmp(a->id, b->id);
    return desc ? -c : c;
}

#define NLIST 23

/* NLIST todos with repeated timestamps and titles, so ties are common; a
 * few patched (updated_at moves) and completed. Fills `all` (from get). */
static void make_list_fixture(const char *user, struct tcopy all[NLIST])
{
    static const char *const titles[] = {"banana", "Apple", "cherry", "apple", "banana"};
    char ids[NLIST][UUID_STR_LEN + 1];
    struct box b = {0};

    for (int i = 0; i < NLIST; i++)
        add_todo(user, titles[i % 5], NULL, i % 4 == 0, T0 + (i % 6) * 1000, ids[i]);
    for (int i = 0; i < NLIST; i += 3) {
        cr_assert_eq(todo_patch_title(user, ids[i], titles[(i + 1) % 5], STORE_IF_MATCH_NONE,
                                      T0 + 50000 + (i % 2), &b),
                     STORE_OK);
        box_free(&b);
    }
    for (int i = 0; i < NLIST; i++) {
        cr_assert_eq(todo_get(user, ids[i], &b), STORE_OK);
        all[i] = b.todo;
        memset(&b.todo, 0, sizeof(b.todo));
        box_free(&b);
    }
}

Test(store, list_sorts_with_ties_broken_by_id)
{
    char user[UUID_STR_LEN + 1], other[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
    struct tcopy all[NLIST];
    struct box b = {0};

    make_user(user);
    make_user(other);
    add_todo(other, "apple", NULL, false, T0, oid); /* never listed for `user` */
    make_list_fixture(user, all);

    for (int s = TODO_SORT_CREATED_AT_DESC; s <= TODO_SORT_TITLE_DESC; s++) {
        cmp_sort = (enum todo_sort)s;
        qsort(all, NLIST, sizeof(all[0]), cmp_tcopy);
        cr_assert_eq(todo_list(user, 1000, 0, -1, NULL, cmp_sort, &b), STORE_OK, "%s", b.message);
        cr_assert_eq(b.ntodos, NLIST, "sort %d", s);
        cr_assert_eq(b.total, NLIST);
        for (int i = 0; i < NLIST; i++) {
            cr_assert_str_eq(b.todos[i].id, all[i].id, "sort %d position %d", s, i);
            cr_assert_str_eq(b.todos[i].title, all[i].title);
            cr_assert_eq(b.todos[i].version, all[i].version);
            cr_assert_eq(b.todos[i].updated_at_ms, all[i].updated_at_ms);
        }
        box_free(&b);
    }
    for (int i = 0; i < NLIST; i++)
        tcopy_free(&all[i]);
}

Test(store, list_pages_never_repeat_or_skip)
{
    char user[UUID_STR_LEN + 1];
    struct tcopy all[NLIST];
    struct box b = {0};
    const int limits[] = {1, 2, 5, 7, NLIST, 50};

    make_user(user);
    make_list_fixture(user, all);
    for (int s = TODO_SORT_CREATED_AT_DESC; s <= TODO_SORT_TITLE_DESC; s++) {
        cmp_sort = (enum todo_sort)s;
        qsort(all, NLIST, sizeof(all[0]), cmp_tcopy);
        for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
            int seen = 0;
            for (int64_t off = 0;; off += limits[l]) {
                cr_assert_eq(todo_list(user, limits[l], off, -1, NULL, cmp_sort, &b), STORE_OK);
                cr_assert_eq(b.total, NLIST, "total with limit %d offset %lld", limits[l],
                             (long long)off);
                cr_assert_leq(b.ntodos, (size_t)limits[l]);
                for (size_t i = 0; i < b.ntodos; i++)
                    cr_assert_str_eq(b.todos[i].id, all[seen + (int)i].id);
                seen += (int)b.ntodos;
                size_t got = b.ntodos;
                box_free(&b);
                if (got == 0)
                    break;
            }
            cr_assert_eq(seen, NLIST);
        }
    }
    /* Far past the end: no rows, the right total. */
    cr_assert_eq(todo_list(user, 10, 1000, -1, NULL, TODO_SORT_TITLE, &b), STORE_OK);
    cr_assert_eq(b.ntodos, 0);
    cr_assert_eq(b.total, NLIST);
    box_free(&b);
    for (int i = 0; i < NLIST; i++)
        tcopy_free(&all[i]);
}

Test(store, list_filters_completed)
{
    char user[UUID_STR_LEN + 1];
    struct tcopy all[NLIST];
    struct box b = {0};
    int ndone = 0;

    make_user(user);
    make_list_fixture(user, all);
    for (int i = 0; i < NLIST; i++)
        ndone += all[i].completed;
    cr_assert_gt(ndone, 0);

    cr_assert_eq(todo_list(user, 1000, 0, 1, NULL, TODO_SORT_CREATED_AT, &b), STORE_OK);
    cr_assert_eq(b.ntodos, (size_t)ndone);
    cr_assert_eq(b.total, ndone);
    for (size_t i = 0; i < b.ntodos; i++)
        cr_assert(b.todos[i].completed);
    box_free(&b);

    cr_assert_eq(todo_list(user, 2, 0, 0, NULL, TODO_SORT_CREATED_AT, &b), STORE_OK);
    cr_assert_eq(b.ntodos, 2);
    cr_assert_eq(b.total, NLIST - ndone);
    for (size_t i = 0; i < b.ntodos; i++)
        cr_assert_not(b.todos[i].completed);
    box_free(&b);
    for (int i = 0; i < NLIST; i++)
        tcopy_free(&all[i]);
}

static size_t count_q(const char *user, const char *q, int completed)
{
    struct box b = {0};
    size_t n;

    cr_assert_eq(todo_list(user, 1000, 0, completed, q, TODO_SORT_TITLE, &b), STORE_OK, "%s",
                 b.message);
    n = b.ntodos;
    cr_assert_eq(b.total, (int64_t)n);
    box_free(&b);
    return n;
}

Test(store, list_q_is_a_literal_case_insensitive_substring)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];

    make_user(user);
    add_todo(user, "100% done", NULL, false, T0, id);
    add_todo(user, "a_b", NULL, false, T0, id);
    add_todo(user, "axb", NULL, false, T0, id);
    add_todo(user, "Plain", "has 50% in the description", true, T0, id);
    add_todo(user, "Crème BRÛLÉE", NULL, false, T0, id);
    add_todo(user, "back\\slash", NULL, false, T0, id);

    cr_assert_eq(count_q(user, "%", -1), 2);  /* not a wildcard */
    cr_assert_eq(count_q(user, "_", -1), 1);  /* not a wildcard */
    cr_assert_eq(count_q(user, "a_b", -1), 1);
    cr_assert_eq(count_q(user, "A_B", -1), 1);
    cr_assert_eq(count_q(user, "x", -1), 1);
    cr_assert_eq(count_q(user, "PLAIN", -1), 1);
    cr_assert_eq(count_q(user, "50%", -1), 1); /* in the description */
    cr_assert_eq(count_q(user, "50%", 0), 0);  /* combined with the filter */
    cr_assert_eq(count_q(user, "50%", 1), 1);
    cr_assert_eq(count_q(user, "\\", -1), 1);
    cr_assert_eq(count_q(user, "crème", -1), 1);
    cr_assert_eq(count_q(user, "brûlée", -1), 1); /* case folding beyond ASCII */
    cr_assert_eq(count_q(user, "nothing like it", -1), 0);
    cr_assert_eq(count_q(user, "", -1), 6);
}

Test(store, list_rejects_bad_queries_synchronously)
{
    char user[UUID_STR_LEN + 1];
    struct box b = {0};

    make_user(user);
    struct todo_query bad[] = {
        {.user_id = user, .limit = 0, .completed = -1},
        {.user_id = user, .limit = 1001, .completed = -1},
        {.user_id = user, .limit = 10, .offset = -1, .completed = -1},
        {.user_id = user, .limit = 10, .completed = 2},
        {.user_id = user, .limit = 10, .completed = -1, .sort = (enum todo_sort)42},
        {.user_id = NULL, .limit = 10, .completed = -1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(store_todo_list(E.w, &bad[i], on_done, &b, NULL), STORE_INVALID, "case %zu",
                     i);
    }
    for (int i = 0; i < 5; i++)
        h2o_evloop_run(E.loop, 0);
    cr_assert_eq(b.calls, 0);
    cr_assert_eq(store_worker_outstanding(E.w), 0);
}

Test(store, writes_reject_bad_input_synchronously)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};
    struct todo_patch p = full_patch("t", NULL, false);
    struct todo_patch untitled = {.has_completed = true};

    make_user(user);
    new_uuid(id);
    struct todo_write bad_id = {.user_id = user, .id = "nope", .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE};
    struct todo_write no_patch = {.user_id = user, .id = id, .if_match = STORE_IF_MATCH_NONE};
    struct todo_write no_title = {.user_id = user, .id = id, .patch = &untitled,
                                  .if_match = STORE_IF_MATCH_NONE};
    struct todo_write bad_match = {.user_id = user, .id = id, .patch = &p, .if_match = -7};

    cr_assert_eq(store_todo_create(E.w, &bad_id, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_put(E.w, &bad_id, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_create(E.w, &no_patch, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_patch(E.w, &no_patch, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_create(E.w, &no_title, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_put(E.w, &no_title, on_done, &b, NULL), STORE_INVALID);
    cr_assert_eq(store_todo_patch(E.w, &bad_match, on_done, &b, NULL), STORE_INVALID);
    struct user_new nu = {.id = "x", .email = "a@b.c", .password_hash = "h"};
    cr_assert_eq(store_user_create(E.w, &nu, on_done, &b, NULL), STORE_INVALID);
    for (int i = 0; i < 5; i++)
        h2o_evloop_run(E.loop, 0);
    cr_assert_eq(b.calls, 0);
    cr_assert_eq(store_worker_outstanding(E.w), 0);
    todo_patch_free(&p);
}

/* ---- the async rule, cancel, detach -------------------------------------- */

/* Inputs may die as soon as the submit call returns. */
Test(store, inputs_are_copied_at_submit)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};
    char *uid, *tid;
    struct todo_patch *p = malloc(sizeof(*p));
    struct todo_write *wr = malloc(sizeof(*wr));

    make_user(user);
    new_uuid(id);
    uid = strdup(user);
    tid = strdup(id);
    *p = full_patch("copied", "also copied", false);
    *wr = (struct todo_write){.user_id = uid, .id = tid, .patch = p,
                              .if_match = STORE_IF_MATCH_NONE, .now_ms = T0};
    in_submit = true;
    int rc = store_todo_create(E.w, wr, on_done, &b, NULL);
    in_submit = false;
    cr_assert_eq(rc, 0);
    memset(p->title, 'X', strlen(p->title));
    todo_patch_free(p);
    memset(p, 0xa5, sizeof(*p));
    memset(uid, 'Y', UUID_STR_LEN);
    memset(tid, 'Z', UUID_STR_LEN);
    free(p);
    free(wr);
    free(uid);
    free(tid);
    wait_box(&b);
    cr_assert_eq(b.status, STORE_OK);
    box_free(&b);
    cr_assert_eq(todo_get(user, id, &b), STORE_OK);
    cr_assert_str_eq(b.todo.title, "copied");
    cr_assert_str_eq(b.todo.description, "also copied");
    box_free(&b);
}

Test(store, cancel_before_completion_means_done_never_runs)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1], ids[64][UUID_STR_LEN + 1];
    struct box b[70];
    struct store_op *ops[70];
    struct todo_patch p = full_patch("cancelled", NULL, false);

    memset(b, 0, sizeof(b));
    make_user(user);
    add_todo(user, "exists", NULL, false, T0, id);

    /* Reads: get, list, ping, user lookups. */
    struct todo_query q = {.user_id = user, .limit = 10, .completed = -1};
    cr_assert_eq(store_todo_get(E.w, user, id, on_done, &b[0], &ops[0]), 0);
    cr_assert_eq(store_todo_list(E.w, &q, on_done, &b[1], &ops[1]), 0);
    cr_assert_eq(store_ping(E.w, on_done, &b[2], &ops[2]), 0);
    cr_assert_eq(store_user_by_id(E.w, user, on_done, &b[3], &ops[3]), 0);
    /* Writes: many, so some are still queued and some are with the writer. */
    for (int i = 0; i < 64; i++) {
        new_uuid(ids[i]);
        struct todo_write wr = {.user_id = user, .id = ids[i], .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE, .now_ms = T0};
        cr_assert_eq(store_todo_create(E.w, &wr, on_done, &b[4 + i], &ops[4 + i]), 0);
    }
    cr_assert_eq(store_worker_outstanding(E.w), 68);
    for (int i = 0; i < 68; i++)
        store_op_cancel(E.w, ops[i]);
    store_op_cancel(E.w, NULL); /* accepted */

    int64_t deadline = mono_ms() + 20000;
    while (store_worker_outstanding(E.w) > 0 && mono_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    cr_assert_eq(store_worker_outstanding(E.w), 0);
    for (int i = 0; i < 68; i++)
        cr_assert_eq(b[i].calls, 0, "op %d completed after cancel", i);
    todo_patch_free(&p);

    /* The store still works, and a cancelled write either committed or not:
     * never half. */
    struct box g = {0};
    for (int i = 0; i < 64; i++) {
        int st = todo_get(user, ids[i], &g);
        cr_assert(st == STORE_OK || st == STORE_NOT_FOUND);
        if (st == STORE_OK)
            cr_assert_str_eq(g.todo.title, "cancelled");
        box_free(&g);
    }
}

Test(store, cancel_from_another_ops_callback)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0}, victim = {0};
    struct store_op *vop = NULL;
    struct todo_patch p = full_patch("x", NULL, false);

    make_user(user);
    new_uuid(id);
    /* Submit a read, then a write whose completion cannot come before the
     * read's; cancel the write right after the read completes. */
    cr_assert_eq(store_ping(E.w, on_done, &b, NULL), 0);
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = T0};
    cr_assert_eq(store_todo_create(E.w, &wr, on_done, &victim, &vop), 0);
    wait_box(&b);
    if (victim.calls == 0)
        store_op_cancel(E.w, vop);
    int64_t deadline = mono_ms() + 20000;
    while (store_worker_outstanding(E.w) > 0 && mono_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    cr_assert_eq(store_worker_outstanding(E.w), 0);
    cr_assert_leq(victim.calls, 1);
    box_free(&b);
    box_free(&victim);
    todo_patch_free(&p);
}

Test(store, detach_with_operations_in_flight)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b[40];
    struct todo_patch p = full_patch("in flight", NULL, false);

    memset(b, 0, sizeof(b));
    make_user(user);
    for (int i = 0; i < 40; i++) {
        new_uuid(id);
        struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE, .now_ms = T0};
        if (i % 4 == 0)
            cr_assert_eq(store_todo_get(E.w, user, id, on_done, &b[i], NULL), 0);
        else
            cr_assert_eq(store_todo_create(E.w, &wr, on_done, &b[i], NULL), 0);
    }
    store_worker_detach(E.w);
    E.w = NULL;
    for (int i = 0; i < 40; i++)
        cr_assert_eq(b[i].calls, 0);
    todo_patch_free(&p);
    /* The fixture then closes the store: 0 proves nothing is outstanding. */
}

Test(store, many_reads_and_writes_complete_exactly_once)
{
    char user[UUID_STR_LEN + 1], ids[200][UUID_STR_LEN + 1];
    struct box b[400];
    struct todo_patch p = full_patch("bulk", NULL, false);

    memset(b, 0, sizeof(b));
    make_user(user);
    for (int i = 0; i < 200; i++) {
        new_uuid(ids[i]);
        struct todo_write wr = {.user_id = user, .id = ids[i], .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE, .now_ms = T0 + i};
        in_submit = true;
        int rc1 = store_todo_create(E.w, &wr, on_done, &b[2 * i], NULL);
        int rc2 = store_todo_get(E.w, user, ids[i], on_done, &b[2 * i + 1], NULL);
        in_submit = false;
        cr_assert_eq(rc1, 0);
        cr_assert_eq(rc2, 0);
    }
    int64_t deadline = mono_ms() + 20000;
    while (store_worker_outstanding(E.w) > 0 && mono_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    for (int i = 0; i < 5; i++)
        h2o_evloop_run(E.loop, 0);
    for (int i = 0; i < 400; i++) {
        cr_assert_eq(b[i].calls, 1, "op %d: %d calls", i, b[i].calls);
        if (i % 2 == 0)
            cr_assert_eq(b[i].status, STORE_OK);
        else /* the read ran at submit, before its create committed */
            cr_assert(b[i].status == STORE_OK || b[i].status == STORE_NOT_FOUND);
        box_free(&b[i]);
    }
    struct box l = {0};
    cr_assert_eq(todo_list(user, 1000, 0, -1, NULL, TODO_SORT_CREATED_AT, &l), STORE_OK);
    cr_assert_eq(l.total, 200);
    box_free(&l);
    todo_patch_free(&p);
}

/* ---- concurrency: two worker threads, each with its own loop ------------- */

enum conc_kind { CONC_CREATE, CONC_USER_EMAIL, CONC_PUT_ONE_ID, CONC_PATCH_IF_MATCH };

struct conc_shared {
    enum conc_kind kind;
    pthread_barrier_t barrier;
    char user[UUID_STR_LEN + 1];
    char id[UUID_STR_LEN + 1];
    char email[128];
    int per_thread;
    int max_in_flight;
};

struct conc_thread {
    struct conc_shared *sh;
    int index;
    int submitted, completed, in_flight;
    int ok, conflict, precondition, created, other, submit_errors, double_calls;
    int64_t elapsed_ms;
};

struct conc_op {
    struct conc_thread *t;
    int calls;
};

static void conc_done(void *ctx, const struct store_result *res)
{
    struct conc_op *o = ctx;
    struct conc_thread *t = o->t;

    if (in_submit)
        atomic_fetch_add(&done_inside_submit, 1);
    if (++o->calls > 1) {
        t->double_calls++;
        return;
    }
    t->completed++;
    t->in_flight--;
    switch (res->status) {
    case STORE_OK:
        t->ok++;
        t->created += res->created;
        break;
    case STORE_CONFLICT:
        t->conflict++;
        break;
    case STORE_PRECONDITION_FAILED:
        t->precondition++;
        break;
    default:
        t->other++;
        break;
    }
}

static int conc_submit(struct store_worker *w, struct conc_thread *t, struct conc_op *o, int n)
{
    struct conc_shared *sh = t->sh;
    char id[UUID_STR_LEN + 1], title[64];
    struct todo_patch p = {.has_title = true, .has_description = true, .has_completed = true,
                           .title = title};
    struct todo_write wr = {.user_id = sh->user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = T0 + n};
    int rc;

    snprintf(title, sizeof(title), "t%d-%d", t->index, n);
    in_submit = true;
    switch (sh->kind) {
    case CONC_CREATE:
        uuid_v7(timefmt_now_ms(), id);
        rc = store_todo_create(w, &wr, conc_done, o, NULL);
        break;
    case CONC_USER_EMAIL: {
        uuid_v7(timefmt_now_ms(), id);
        struct user_new u = {.id = id, .email = sh->email, .password_hash = "h", .now_ms = T0};
        rc = store_user_create(w, &u, conc_done, o, NULL);
        break;
    }
    case CONC_PUT_ONE_ID:
        wr.id = sh->id;
        rc = store_todo_put(w, &wr, conc_done, o, NULL);
        break;
    case CONC_PATCH_IF_MATCH:
        wr.id = sh->id;
        wr.if_match = 1;
        p.has_description = p.has_completed = false;
        rc = store_todo_patch(w, &wr, conc_done, o, NULL);
        break;
    default:
        rc = STORE_INTERNAL;
    }
    in_submit = false;
    return rc;
}

/* h2o keeps freed socket buffers in a per-thread cache (h2o 2.2.5
 * h2o_socket_buffer_prototype); a thread that ends must empty it or the
 * leak checker rightly reports the buffers. */
static void free_h2o_thread_cache(void)
{
    h2o_mem_recycle_t *r = &h2o_socket_buffer_prototype.allocator;

    while (r->cnt > 0)
        free(h2o_mem_alloc_recycle(r, 0));
}

static void *conc_main(void *arg)
{
    struct conc_thread *t = arg;
    struct conc_shared *sh = t->sh;
    h2o_loop_t *loop = h2o_evloop_create();
    struct store_worker *w = store_worker_attach(E.s, loop);
    struct conc_op *ops = calloc((size_t)sh->per_thread, sizeof(*ops));

    pthread_barrier_wait(&sh->barrier);
    int64_t start = mono_ms(), deadline = start + 60000;
    while (w != NULL && t->completed + t->submit_errors < sh->per_thread &&
           mono_ms() < deadline) {
        while (t->submitted < sh->per_thread && t->in_flight < sh->max_in_flight) {
            struct conc_op *o = &ops[t->submitted];
            o->t = t;
            int rc = conc_submit(w, t, o, t->submitted);
            t->submitted++;
            if (rc == 0)
                t->in_flight++;
            else
                t->submit_errors++;
        }
        h2o_evloop_run(loop, 10);
    }
    t->elapsed_ms = mono_ms() - start;
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(loop, 0);
    store_worker_detach(w);
    h2o_evloop_destroy(loop);
    free_h2o_thread_cache();
    free(ops);
    return NULL;
}

/* Run `kind` from two threads at once; results summed into *sum. */
static void run_concurrently(struct conc_shared *sh, struct conc_thread *sum)
{
    pthread_t th[2];
    struct conc_thread t[2];

    memset(t, 0, sizeof(t));
    memset(sum, 0, sizeof(*sum));
    pthread_barrier_init(&sh->barrier, NULL, 2);
    for (int i = 0; i < 2; i++) {
        t[i].sh = sh;
        t[i].index = i;
        cr_assert_eq(pthread_create(&th[i], NULL, conc_main, &t[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        sum->completed += t[i].completed;
        sum->ok += t[i].ok;
        sum->conflict += t[i].conflict;
        sum->precondition += t[i].precondition;
        sum->created += t[i].created;
        sum->other += t[i].other;
        sum->submit_errors += t[i].submit_errors;
        sum->double_calls += t[i].double_calls;
        if (t[i].elapsed_ms > sum->elapsed_ms)
            sum->elapsed_ms = t[i].elapsed_ms;
    }
    pthread_barrier_destroy(&sh->barrier);
    cr_assert_eq(sum->submit_errors, 0);
    cr_assert_eq(sum->double_calls, 0);
    cr_assert_eq(sum->completed, 2 * sh->per_thread, "completed %d", sum->completed);
}

Test(store, group_commit_from_two_threads_is_durable)
{
    struct conc_shared sh = {.kind = CONC_CREATE};
    struct conc_thread sum;
    /* STORE_BENCH_N writes per thread, STORE_BENCH_IN_FLIGHT submitted and
     * not yet completed per thread (docs/internals/store.md). */
    const char *n_env = getenv("STORE_BENCH_N"), *k_env = getenv("STORE_BENCH_IN_FLIGHT");
    struct box b = {0};

    sh.per_thread = n_env != NULL ? (int)strtol(n_env, NULL, 10) : 10000;
    if (sh.per_thread <= 0)
        sh.per_thread = 10000;
    sh.max_in_flight = k_env != NULL ? (int)strtol(k_env, NULL, 10) : 512;
    if (sh.max_in_flight <= 0)
        sh.max_in_flight = 512;
    make_user(sh.user);
    run_concurrently(&sh, &sum);
    cr_assert_eq(sum.ok, 2 * sh.per_thread, "ok %d other %d", sum.ok, sum.other);
    double secs = sum.elapsed_ms > 0 ? sum.elapsed_ms / 1000.0 : 0.001;
    fprintf(stderr,
            "store: %d durable todo_create from 2 threads, %d in flight each, in %.3f s"
            " = %.0f writes/s\n",
            2 * sh.per_thread, sh.max_in_flight, secs, 2 * sh.per_thread / secs);

    /* Reopen: every acknowledged write is there. */
    store_worker_detach(E.w);
    E.w = NULL;
    cr_assert_eq(store_close(E.s), 0);
    E.s = open_store(false);
    cr_assert_eq(store_schema_current(E.s), STORE_OK);
    E.w = store_worker_attach(E.s, E.loop);
    cr_assert_not_null(E.w);
    cr_assert_eq(todo_list(sh.user, 1000, 0, -1, NULL, TODO_SORT_CREATED_AT, &b), STORE_OK);
    cr_assert_eq(b.total, 2 * sh.per_thread);
    box_free(&b);
}

Test(store, concurrent_registrations_of_one_email)
{
    struct conc_shared sh = {.kind = CONC_USER_EMAIL, .per_thread = 25, .max_in_flight = 25};
    struct conc_thread sum;
    char tag[UUID_STR_LEN + 1];

    new_uuid(tag);
    snprintf(sh.email, sizeof(sh.email), "race-%s@example.test", tag);
    run_concurrently(&sh, &sum);
    cr_assert_eq(sum.ok, 1);
    cr_assert_eq(sum.conflict, 49);
    cr_assert_eq(sum.other, 0);
}

Test(store, concurrent_puts_of_one_new_id)
{
    struct conc_shared sh = {.kind = CONC_PUT_ONE_ID, .per_thread = 25, .max_in_flight = 25};
    struct conc_thread sum;
    struct box b = {0};

    make_user(sh.user);
    new_uuid(sh.id);
    run_concurrently(&sh, &sum);
    cr_assert_eq(sum.ok, 50, "other %d", sum.other);
    cr_assert_eq(sum.created, 1);
    /* Each PUT had its own title, so each one after the first is a change. */
    cr_assert_eq(todo_get(sh.user, sh.id, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 50);
    box_free(&b);
}

Test(store, concurrent_patches_with_one_if_match)
{
    struct conc_shared sh = {.kind = CONC_PATCH_IF_MATCH, .per_thread = 25, .max_in_flight = 25};
    struct conc_thread sum;
    struct box b = {0};

    make_user(sh.user);
    add_todo(sh.user, "original", NULL, false, T0, sh.id);
    run_concurrently(&sh, &sum);
    cr_assert_eq(sum.ok, 1);
    cr_assert_eq(sum.precondition, 49);
    cr_assert_eq(sum.other, 0);
    cr_assert_eq(todo_get(sh.user, sh.id, &b), STORE_OK);
    cr_assert_eq(b.todo.version, 2);
    cr_assert_str_neq(b.todo.title, "original");
    box_free(&b);
}

/* ---- migrations ----------------------------------------------------------- */

Test(store, schema_is_current_and_second_open_applies_nothing)
{
    cr_assert_eq(store_schema_current(E.s), STORE_OK);
    if (!is_sqlite())
        return;
    /* Open again with migrate: nothing new is recorded. */
    struct store *again = open_store(true);
    cr_assert_eq(store_schema_current(again), STORE_OK);
    cr_assert_eq(store_close(again), 0);

    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open_v2(E.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT count(*), max(version), min(checksum), min(name),"
                                    " min(length(applied_at)) FROM schema_migrations",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    size_t n = 0;
    const struct migration *m = migrate_embedded("sqlite", &n);
    char sum[65];
    migrate_checksum(m[n - 1].up_sql, sum);
    cr_assert_eq(sqlite3_column_int64(st, 0), (int64_t)n);
    cr_assert_eq(sqlite3_column_int64(st, 1), m[n - 1].version);
    cr_assert_eq(migrate_latest_version("sqlite"), m[n - 1].version);
    if (n == 1) {
        cr_assert_str_eq((const char *)sqlite3_column_text(st, 2), sum);
        cr_assert_str_eq((const char *)sqlite3_column_text(st, 3), m[0].name);
    }
    cr_assert_eq(sqlite3_column_int(st, 4), TIMEFMT_LEN);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(store, unmigrated_database_is_not_current)
{
    char url[PATH_MAX + 32], err[256];

    if (!is_sqlite())
        cr_skip_test("needs its own SQLite file");
    snprintf(url, sizeof(url), "sqlite:///%s/empty.db", E.dir);
    struct store *s = store_open(url, false, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(store_schema_current(s), STORE_UNAVAILABLE);
    cr_assert_eq(store_close(s), 0);
    s = store_open(url, true, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(store_schema_current(s), STORE_OK);
    cr_assert_eq(store_close(s), 0);
    char p[PATH_MAX + 16];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/empty.db%s", E.dir, suffixes[i]);
        unlink(p);
    }
}

static const char *const checksum_vectors[][2] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
};

Test(store, migrate_checksum_is_sha256_hex)
{
    char out[65];

    for (size_t i = 0; i < 2; i++) {
        migrate_checksum(checksum_vectors[i][0], out);
        cr_assert_str_eq(out, checksum_vectors[i][1]);
    }
}

static sqlite3 *open_scratch(const char *name, char *path, size_t pathlen)
{
    sqlite3 *db = NULL;
    char err[256];

    snprintf(path, pathlen, "%s/%s", E.dir, name);
    cr_assert_eq(store__sqlite_open(path, STORE__SQLITE_ADMIN, &db, err, sizeof(err)), STORE_OK,
                 "%s", err);
    return db;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;

    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

Test(store, migration_failure_rolls_back_and_names_the_file)
{
    char path[PATH_MAX + 32], err[512];
    struct migrate_db mdb;

    if (!is_sqlite())
        cr_skip_test("drives the SQLite migration callbacks directly");
    sqlite3 *db = open_scratch("mig.db", path, sizeof(path));
    store__sqlite_migrate_db(db, &mdb);
    const struct migration list[] = {
        {1, "first", "CREATE TABLE a (x INTEGER) STRICT;", NULL},
        {2, "broken", "CREATE TABLE b (x INTEGER) STRICT; INSERT INTO nowhere VALUES (1);", NULL},
        {3, "never", "CREATE TABLE c (x INTEGER) STRICT;", NULL},
    };
    cr_assert_eq(migrate_up_list(&mdb, list, 3, err, sizeof(err)), -1);
    cr_assert(strncmp(err, "0002_broken.up.sql: ", 20) == 0, "err: %s", err);
    cr_assert_not_null(strstr(err, "nowhere"), "err: %s", err);
    /* 0001 committed; 0002 left nothing behind (not even table b); 0003 not run. */
    cr_assert_eq(scalar(db, "SELECT max(version) FROM schema_migrations"), 1);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'a'"), 1);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('b', 'c')"), 0);
    cr_assert(sqlite3_get_autocommit(db));

    /* Fixed, it applies 0002 and 0003 only. */
    const struct migration fixed[] = {
        list[0],
        {2, "broken", "CREATE TABLE b (x INTEGER) STRICT;", NULL},
        list[2],
    };
    cr_assert_eq(migrate_up_list(&mdb, fixed, 3, err, sizeof(err)), 2, "%s", err);
    cr_assert_eq(migrate_up_list(&mdb, fixed, 3, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM schema_migrations"), 3);

    /* Out-of-order lists are refused. */
    const struct migration unordered[] = {list[2], list[0]};
    cr_assert_eq(migrate_up_list(&mdb, unordered, 2, err, sizeof(err)), -1);
    sqlite3_close(db);
}

struct mig_race {
    const char *url;
    pthread_barrier_t *barrier;
    bool ok;
    char err[256];
};

static void *mig_race_main(void *arg)
{
    struct mig_race *r = arg;

    pthread_barrier_wait(r->barrier);
    struct store *s = store_open(r->url, true, r->err, sizeof(r->err));
    r->ok = s != NULL && store_schema_current(s) == STORE_OK;
    if (s != NULL && store_close(s) != 0)
        r->ok = false;
    return NULL;
}

Test(store, concurrent_starters_apply_migrations_once)
{
    char url[PATH_MAX + 32], path[PATH_MAX + 16];
    pthread_barrier_t barrier;
    pthread_t th[4];
    struct mig_race r[4];

    if (!is_sqlite())
        cr_skip_test("needs its own SQLite file");
    snprintf(path, sizeof(path), "%s/race.db", E.dir);
    snprintf(url, sizeof(url), "sqlite:///%s", path);
    pthread_barrier_init(&barrier, NULL, 4);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct mig_race){.url = url, .barrier = &barrier};
        cr_assert_eq(pthread_create(&th[i], NULL, mig_race_main, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert(r[i].ok, "starter %d: %s", i, r[i].err);
    }
    pthread_barrier_destroy(&barrier);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    size_t n = 0;
    migrate_embedded("sqlite", &n);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM schema_migrations"), (int64_t)n);
    sqlite3_close(db);
}

Test(store, sqlite_settings_are_in_force)
{
    if (!is_sqlite())
        cr_skip_test("SQLite only");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(E.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* STRICT tables and the foreign key with cascade exist. */
    cr_assert_eq(scalar(db, "SELECT count(*) FROM pragma_table_list WHERE strict = 1 AND name IN"
                            " ('users', 'todos')"),
                 2);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM pragma_foreign_key_list('todos') WHERE"
                            " \"table\" = 'users' AND on_delete = 'CASCADE'"),
                 1);
    sqlite3_close(db);
}
