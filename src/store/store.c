#include "store/store.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "migrate/migrate.h"
#include "store/store_int.h"
#include "util/dburl.h"
#include "util/xalloc.h"

/* The backends, picked by URL scheme (docs/internals/store.md: adding one). */
static const struct store_backend *const backends[] = {
    &store_backend_sqlite,
    &store_backend_pg,
    NULL,
};

/* struct store as store.c allocates it: the public part first, then what
 * only this file touches. */
struct store_box {
    struct store s;
    atomic_uint nworkers; /* attached workers; attach/detach run on worker threads */
};

const char *store_strerror(int status)
{
    switch (status) {
    case STORE_OK:
        return "ok";
    case STORE_NOT_FOUND:
        return "not found";
    case STORE_CONFLICT:
        return "conflict";
    case STORE_PRECONDITION_FAILED:
        return "precondition failed";
    case STORE_INVALID:
        return "invalid";
    case STORE_UNAVAILABLE:
        return "unavailable";
    case STORE_INTERNAL:
        return "internal error";
    default:
        return "unknown store status";
    }
}

/* The backend whose scheme list holds the scheme of `url` ("sqlite" in
 * "sqlite:///x.db"), or NULL. */
static const struct store_backend *find_backend(const char *url)
{
    const char *colon = strchr(url, ':');

    if (colon == NULL)
        return NULL;
    size_t len = (size_t)(colon - url);
    for (size_t i = 0; backends[i] != NULL; i++) {
        for (const char *const *sc = backends[i]->schemes; *sc != NULL; sc++) {
            if (strlen(*sc) == len && strncasecmp(*sc, url, len) == 0)
                return backends[i];
        }
    }
    return NULL;
}

static int run_migrations(struct store *s, char *err, size_t errlen)
{
    struct migrate_db db;

    s->_be->migrate_db(s, &db);
    return migrate_up(&db, err, errlen) < 0 ? -1 : 0;
}

struct store *store_open(const char *url, bool migrate, char *err, size_t errlen)
{
    struct store_options o = {.migrate = migrate};

    return store_open_opts(url, &o, err, errlen);
}

struct store *store_open_opts(const char *url, const struct store_options *opts, char *err,
                              size_t errlen)
{
    struct dburl u = {0};
    struct store_box *box = NULL;
    const struct store_backend *be;
    const char *target;

    if (dburl_parse(url, &u, err, errlen) != 0)
        return NULL;
    be = find_backend(url);
    if (be == NULL) {
        snprintf(err, errlen, "no storage backend for %s", u.redacted);
        goto out;
    }
    target = u.kind == DBURL_SQLITE ? u.path : u.conninfo;
    box = xcalloc(1, sizeof(*box));
    box->s._be = be;
    box->s._opts = *opts;
    atomic_init(&box->nworkers, 0);
    if (be->open(&box->s, target, err, errlen) != 0) {
        free(box);
        box = NULL;
        goto out;
    }
    if (opts->migrate && !(be->caps & STORE_CAP_OWN_MIGRATIONS) &&
        run_migrations(&box->s, err, errlen) != 0) {
        be->close(&box->s);
        free(box);
        box = NULL;
        goto out;
    }

out:
    dburl_free(&u);
    return box != NULL ? &box->s : NULL;
}

int store_close(struct store *s)
{
    struct store_box *box = (struct store_box *)s;

    if (s == NULL)
        return 0;
    if (atomic_load(&box->nworkers) != 0)
        return -EBUSY;
    s->_be->close(s);
    free(box);
    return 0;
}

const char *store_backend_name(const struct store *s)
{
    return s->_be->name;
}

struct store_worker *store_worker_attach(struct store *s, h2o_loop_t *loop)
{
    struct store_box *box = (struct store_box *)s;
    struct store_worker *w = s->_be->worker_attach(s, loop);

    if (w != NULL)
        atomic_fetch_add(&box->nworkers, 1);
    return w;
}

void store_worker_detach(struct store_worker *w)
{
    struct store_box *box;

    if (w == NULL)
        return;
    box = (struct store_box *)w->_store;
    w->_store->_be->worker_detach(w);
    atomic_fetch_sub(&box->nworkers, 1);
}

int store_schema_current(struct store *s)
{
    int64_t version = 0;
    int rc = s->_be->schema_version(s, &version);

    if (rc < 0)
        return rc;
    return version == migrate_latest_version(s->_be->name) ? STORE_OK : STORE_UNAVAILABLE;
}

/* ---- result arena ------------------------------------------------------ */

#define ARENA_BLOCK 16384

struct store__arena {
    struct store__arena *next;
    size_t used, cap;
    char data[];
};

char *store__arena_strndup(struct store__arena **a, const char *s, size_t len)
{
    struct store__arena *blk = *a;
    char *p;

    if (blk == NULL || blk->cap - blk->used < len + 1) {
        size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        blk = xmalloc(sizeof(*blk) + cap);
        blk->used = 0;
        blk->cap = cap;
        blk->next = *a;
        *a = blk;
    }
    p = blk->data + blk->used;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    blk->used += len + 1;
    return p;
}

void store__arena_free(struct store__arena *a)
{
    while (a != NULL) {
        struct store__arena *next = a->next;
        free(a);
        a = next;
    }
}

bool store__copy_uuid(char out[UUID_STR_LEN + 1], const char *s)
{
    return s != NULL && uuid_parse(s, strlen(s), out);
}

bool store__query_valid(const struct todo_query *q)
{
    return q != NULL && q->user_id != NULL && q->limit >= 1 && q->limit <= 1000 &&
           q->offset >= 0 && q->completed >= -1 && q->completed <= 1 && (int)q->sort >= 0 &&
           q->sort <= TODO_SORT_TITLE_DESC;
}

void store__copy_patch(struct todo_patch *dst, const struct todo_patch *src)
{
    *dst = *src;
    dst->title = src->title != NULL ? xstrdup(src->title) : NULL;
    dst->description = src->description != NULL ? xstrdup(src->description) : NULL;
}
