/*
 * dbtool/dbverify: bucket digests of both sides in one pass each,
 * bisection of the buckets that differ, and a merge by key of the small
 * ranges left.
 *
 * Memory: the buckets' bounds (every chunk_rows-th source key) and both
 * sides' digests of them; the source keys of the one differing bucket
 * being bisected (at most chunk_rows: split points, read only for a bucket
 * that differs); and, during a merge, the rows of the side that has at
 * most leaf_rows rows in the range (copied); the other side is streamed.
 *
 * The target's digests run on a second thread (struct dworker) while the
 * main thread digests the source: with a PostgreSQL target the work
 * happens in the server, with a SQLite one on the other core. The
 * target's dbsrc is only touched by one thread at a time (the hand-over
 * goes through the worker's mutex; the bucket digests it writes are read
 * after it); merges use it from the main thread while the worker is idle.
 * (dbconv is pure, so the two threads may convert at the same time.)
 */
#include "dbtool/dbverify.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define DEFAULT_CHUNK_ROWS 10000
#define DEFAULT_LEAF_ROWS 64
#define DEFAULT_MAX_REPORT 100
#define MAX_BATCH_ROWS 10000
#define SCAN_FULL 1 /* a key scan's callback: the chunk is full, stop */
#define WORKER_ERRLEN 512

struct vkey {
    char s[DBROW_UUID_LEN + 1];
};

struct rdigest {
    unsigned char md5[16];
    int64_t rows;
};

enum dworker_state { DW_IDLE, DW_REQUEST, DW_DONE, DW_QUIT };

struct buckets;

/* The thread that computes the target's digests (see the top comment). */
struct dworker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dbsrc *dst;
    enum dworker_state state;
    const struct dbtable *t;
    struct vkey lo, hi;
    bool has_lo, has_hi;
    struct buckets *b; /* non-NULL: a request for the target's bucket digests */
    struct rdigest out;
    int rc;
    char err[WORKER_ERRLEN];
};

/* The source keys of one bucket that differs, ascending: bisection splits
 * at them. */
struct chunk {
    struct vkey *keys;
    size_t n, alloc;
};

/* The first-level ranges: bucket i is (bounds[i-1], bounds[i]] (open at
 * both ends: dbsrc_digest_buckets), with both sides' digests. */
struct buckets {
    struct vkey *bounds;
    size_t nbounds, alloc;
    const char **ptrs; /* bounds[i].s, for dbsrc_digest_buckets */
    int64_t *src, *dst; /* rows, nbounds + 1 each */
    unsigned char (*src_md5)[16], (*dst_md5)[16];
};

struct verifier {
    struct dbsrc *src, *dst;
    struct dworker *w; /* digests the target */
    const struct dbtable *t;
    struct dbverify_table *tr;
    int64_t chunk_rows, leaf_rows;
    size_t max_report;
    struct chunk *cur; /* the bucket being compared (its keys split ranges) */
    char *err;
    size_t errlen;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the target's digest thread ---- */

static void *dworker_main(void *arg)
{
    struct dworker *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != DW_REQUEST && w->state != DW_QUIT)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state == DW_QUIT)
            break;
        pthread_mutex_unlock(&w->mu);
        if (w->b != NULL)
            w->rc = dbsrc_digest_buckets(w->dst, w->t, w->b->ptrs, w->b->nbounds, w->b->dst_md5,
                                         w->b->dst, w->err, sizeof(w->err));
        else
            w->rc = dbsrc_digest(w->dst, w->t, w->has_lo ? w->lo.s : NULL,
                                 w->has_hi ? w->hi.s : NULL, w->out.md5, &w->out.rows, w->err,
                                 sizeof(w->err));
        pthread_mutex_lock(&w->mu);
        w->state = DW_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static struct dworker *dworker_start(struct dbsrc *dst)
{
    struct dworker *w = xcalloc(1, sizeof(*w));
    w->dst = dst;
    w->state = DW_IDLE;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, dworker_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

static void dworker_stop(struct dworker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->state == DW_REQUEST) /* never left so, but be safe */
        pthread_cond_wait(&w->cv, &w->mu);
    w->state = DW_QUIT;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void key_set(struct vkey *dst, bool *has, const char *k)
{
    *has = k != NULL;
    if (k != NULL)
        snprintf(dst->s, sizeof(dst->s), "%s", k);
}

static void dworker_post(struct dworker *w, const struct dbtable *t, const char *lo,
                         const char *hi)
{
    pthread_mutex_lock(&w->mu);
    assert(w->state == DW_IDLE); /* one request at a time */
    w->t = t;
    w->b = NULL;
    key_set(&w->lo, &w->has_lo, lo);
    key_set(&w->hi, &w->has_hi, hi);
    w->state = DW_REQUEST;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The target's digests of b's buckets, into b->dst and b->dst_md5 (which
 * the main thread reads only after dworker_wait). */
static void dworker_post_buckets(struct dworker *w, const struct dbtable *t, struct buckets *b)
{
    pthread_mutex_lock(&w->mu);
    assert(w->state == DW_IDLE);
    w->t = t;
    w->b = b;
    w->state = DW_REQUEST;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int dworker_wait(struct dworker *w, struct rdigest *out, char *err, size_t errlen)
{
    int rc;

    pthread_mutex_lock(&w->mu);
    while (w->state != DW_DONE)
        pthread_cond_wait(&w->cv, &w->mu);
    w->state = DW_IDLE;
    *out = w->out;
    rc = w->rc;
    if (rc != 0)
        snprintf(err, errlen, "%s", w->err);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* ---- digests of one range on both sides ---- */

/* Start the target's digest of (lo, hi] on the worker. */
static void target_start(struct verifier *v, const char *lo, const char *hi)
{
    dworker_post(v->w, v->t, lo, hi);
}

/* Its result. With `failed` (the caller already has an error) the result is
 * collected and dropped, keeping the caller's message. */
static int target_finish(struct verifier *v, struct rdigest *d, bool failed)
{
    char ignored[WORKER_ERRLEN];

    if (failed) {
        (void)dworker_wait(v->w, d, ignored, sizeof(ignored));
        return -1;
    }
    return dworker_wait(v->w, d, v->err, v->errlen);
}

static int source_digest(struct verifier *v, const char *lo, const char *hi, struct rdigest *s)
{
    return dbsrc_digest(v->src, v->t, lo, hi, s->md5, &s->rows, v->err, v->errlen);
}

static int digest_both(struct verifier *v, const char *lo, const char *hi, struct rdigest *s,
                       struct rdigest *d)
{
    target_start(v, lo, hi);
    int rc = source_digest(v, lo, hi, s);
    return target_finish(v, d, rc != 0);
}

static bool digest_equal(const struct rdigest *s, const struct rdigest *d)
{
    if (s->rows != d->rows)
        return false;
    return s->rows == 0 || memcmp(s->md5, d->md5, sizeof(s->md5)) == 0;
}

/* ---- reporting ---- */

static void report(struct verifier *v, enum dbverify_kind kind, const char *id,
                   const struct dbrow *a, const struct dbrow *b)
{
    struct dbverify_table *tr = v->tr;

    switch (kind) {
    case DBVERIFY_MISSING:
        tr->missing++;
        break;
    case DBVERIFY_EXTRA:
        tr->extra++;
        break;
    case DBVERIFY_DIFFERENT:
        tr->different++;
        break;
    default:
        abort();
    }
    if (tr->ndiffs >= v->max_report)
        return;
    tr->diffs = xrealloc(tr->diffs, (tr->ndiffs + 1) * sizeof(*tr->diffs));
    struct dbverify_diff *d = &tr->diffs[tr->ndiffs++];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    snprintf(d->id, sizeof(d->id), "%s", id);
    if (kind != DBVERIFY_DIFFERENT)
        return;
    struct buf names;
    buf_init(&names, SIZE_MAX);
    for (size_t i = 1; i < v->t->ncols; i++) {
        if (dbrow_value_equal(&a->v[i], &b->v[i], v->t->cols[i].type))
            continue;
        if (names.len > 0)
            buf_append_str(&names, ", ");
        buf_append_str(&names, v->t->cols[i].name);
    }
    d->columns = buf_take(&names, NULL);
}

/* True when two rows with the same key differ in some column. */
static bool rows_differ(const struct dbtable *t, const struct dbrow *a, const struct dbrow *b)
{
    for (size_t i = 1; i < t->ncols; i++)
        if (!dbrow_value_equal(&a->v[i], &b->v[i], t->cols[i].type))
            return true;
    return false;
}

/* ---- merge of a small range ---- */

/* Rows of the side held in memory (at most about leaf_rows), deep copies. */
struct rowset {
    const struct dbtable *t;
    struct dbrow *rows;
    size_t n, alloc;
};

static int rowset_add(void *ctx, const struct dbrow *r)
{
    struct rowset *rs = ctx;

    if (rs->n == rs->alloc) {
        rs->alloc = rs->alloc ? rs->alloc * 2 : 16;
        rs->rows = xrealloc(rs->rows, rs->alloc * sizeof(*rs->rows));
    }
    struct dbrow *c = &rs->rows[rs->n++];
    *c = *r;
    for (size_t i = 0; i < rs->t->ncols; i++) {
        struct dbval *val = &c->v[i];
        if (rs->t->cols[i].type == DBCOL_TEXT && !val->null) {
            char *s = xmalloc(val->len + 1);
            memcpy(s, r->v[i].s, val->len);
            s[val->len] = '\0';
            val->s = s;
        }
    }
    return 0;
}

static void rowset_free(struct rowset *rs)
{
    for (size_t k = 0; k < rs->n; k++)
        for (size_t i = 0; i < rs->t->ncols; i++)
            if (rs->t->cols[i].type == DBCOL_TEXT && !rs->rows[k].v[i].null)
                free((char *)(uintptr_t)rs->rows[k].v[i].s);
    free(rs->rows);
    rs->rows = NULL;
    rs->n = rs->alloc = 0;
}

struct merge {
    struct verifier *v;
    struct rowset mem;
    size_t next;      /* first mem row not yet matched */
    bool mem_source; /* mem holds the source's rows, the stream the target's */
};

/* A row only on one side: MISSING when that side is the source. */
static void report_alone(struct merge *m, bool from_source, const struct dbrow *r)
{
    report(m->v, from_source ? DBVERIFY_MISSING : DBVERIFY_EXTRA, dbrow_pk(r), NULL, NULL);
}

static int merge_row(void *ctx, const struct dbrow *r)
{
    struct merge *m = ctx;
    const char *pk = dbrow_pk(r);
    int cmp = 1;

    while (m->next < m->mem.n) {
        const struct dbrow *x = &m->mem.rows[m->next];
        cmp = strcmp(dbrow_pk(x), pk);
        if (cmp >= 0)
            break;
        report_alone(m, m->mem_source, x);
        m->next++;
    }
    if (m->next < m->mem.n && cmp == 0) {
        const struct dbrow *x = &m->mem.rows[m->next++];
        const struct dbrow *s = m->mem_source ? x : r, *d = m->mem_source ? r : x;
        if (rows_differ(m->v->t, s, d))
            report(m->v, DBVERIFY_DIFFERENT, pk, s, d);
        return 0;
    }
    report_alone(m, !m->mem_source, r);
    return 0;
}

/* Read the smaller side of (lo, hi] into memory, stream the other past it. */
static int merge_range(struct verifier *v, const char *lo, const char *hi, bool mem_source)
{
    struct merge m = {.v = v, .mem = {.t = v->t}, .mem_source = mem_source};
    struct dbsrc *mem_db = mem_source ? v->src : v->dst;
    struct dbsrc *stream_db = mem_source ? v->dst : v->src;
    int rc;

    rc = dbsrc_scan(mem_db, v->t, lo, hi, 0, rowset_add, NULL, &m.mem, v->err, v->errlen);
    if (rc != 0)
        goto out;
    /* Against nothing, every streamed row is reported by its key alone. */
    unsigned flags = m.mem.n == 0 ? DBSRC_SCAN_KEYS_ONLY : 0;
    rc = dbsrc_scan(stream_db, v->t, lo, hi, flags, merge_row, NULL, &m, v->err, v->errlen);
    if (rc != 0)
        goto out;
    for (; m.next < m.mem.n; m.next++)
        report_alone(&m, mem_source, &m.mem.rows[m.next]);
out:
    rowset_free(&m.mem);
    return rc == 0 ? 0 : -1;
}

/* ---- bisection ---- */

static int compare_range(struct verifier *v, const char *lo, const char *hi, size_t a, size_t b);

/* Given both digests of (lo, hi], whose source keys are v->cur->keys[a..b):
 * done when they agree, else merge a small range or split a large one. */
static int compare_digests(struct verifier *v, const char *lo, const char *hi, size_t a,
                           size_t b, const struct rdigest *s, const struct rdigest *d)
{
    if (s->rows != (int64_t)(b - a)) {
        snprintf(v->err, v->errlen,
                 "%s: the source's range digest counted %lld rows where its key scan found %zu "
                 "(the source changed outside its snapshot?)",
                 v->t->name, (long long)s->rows, b - a);
        return -1;
    }
    if (digest_equal(s, d))
        return 0;
    if (s->rows <= v->leaf_rows || d->rows <= v->leaf_rows)
        return merge_range(v, lo, hi, s->rows <= v->leaf_rows && s->rows <= d->rows);
    /* More than leaf_rows (>= 1) source keys: both halves hold some. */
    size_t mid = a + (b - a) / 2;
    const char *split = v->cur->keys[mid - 1].s;
    if (compare_range(v, lo, split, a, mid) != 0)
        return -1;
    return compare_range(v, split, hi, mid, b);
}

/* Compare (lo, hi], whose source keys are v->cur->keys[a..b). */
static int compare_range(struct verifier *v, const char *lo, const char *hi, size_t a, size_t b)
{
    struct rdigest s, d;

    if (digest_both(v, lo, hi, &s, &d) != 0)
        return -1;
    return compare_digests(v, lo, hi, a, b, &s, &d);
}

/* ---- buckets ---- */

/* Keys of one range of the source, ascending. */
struct key_scan {
    struct chunk *c;
    size_t max;
};

static int key_add(void *ctx, const struct dbrow *r)
{
    struct key_scan *ks = ctx;
    struct chunk *c = ks->c;

    if (c->n == c->alloc) {
        size_t want = c->alloc ? c->alloc * 2 : 256;
        if (want > ks->max)
            want = ks->max;
        c->keys = xrealloc(c->keys, want * sizeof(*c->keys));
        c->alloc = want;
    }
    memcpy(c->keys[c->n].s, dbrow_pk(r), sizeof(c->keys[0].s)); /* canonical: 36 + NUL */
    c->n++;
    return c->n == ks->max ? SCAN_FULL : 0;
}

/* The source's keys of (lo, hi]: at most chunk_rows (a bucket's), or the
 * scan stops there; compare_digests then finds the count off. */
static int chunk_load(struct verifier *v, struct chunk *c, const char *lo, const char *hi)
{
    struct key_scan ks = {.c = c, .max = (size_t)v->chunk_rows};

    c->n = 0;
    int rc = dbsrc_scan(v->src, v->t, lo, hi, DBSRC_SCAN_KEYS_ONLY, key_add, NULL, &ks, v->err,
                        v->errlen);
    return rc == 0 || rc == SCAN_FULL ? 0 : -1;
}

struct bound_scan {
    struct buckets *b;
    int64_t every, seen;
};

static int bound_add(void *ctx, const struct dbrow *r)
{
    struct bound_scan *bs = ctx;
    struct buckets *b = bs->b;

    if (++bs->seen % bs->every != 0)
        return 0;
    if (b->nbounds == b->alloc) {
        b->alloc = b->alloc ? b->alloc * 2 : 64;
        b->bounds = xrealloc(b->bounds, b->alloc * sizeof(*b->bounds));
    }
    memcpy(b->bounds[b->nbounds++].s, dbrow_pk(r), sizeof(b->bounds[0].s));
    return 0;
}

/* The buckets' bounds: every chunk_rows-th source key (one keys-only
 * scan), then room for both sides' digests. */
static int buckets_load(struct verifier *v, struct buckets *b)
{
    struct bound_scan bs = {.b = b, .every = v->chunk_rows};

    if (dbsrc_scan(v->src, v->t, NULL, NULL, DBSRC_SCAN_KEYS_ONLY, bound_add, NULL, &bs, v->err,
                   v->errlen) != 0)
        return -1;
    b->ptrs = xcalloc(b->nbounds + 1, sizeof(*b->ptrs));
    for (size_t i = 0; i < b->nbounds; i++)
        b->ptrs[i] = b->bounds[i].s;
    b->src = xcalloc(b->nbounds + 1, sizeof(*b->src));
    b->dst = xcalloc(b->nbounds + 1, sizeof(*b->dst));
    b->src_md5 = xcalloc(b->nbounds + 1, sizeof(*b->src_md5));
    b->dst_md5 = xcalloc(b->nbounds + 1, sizeof(*b->dst_md5));
    return 0;
}

static void buckets_free(struct buckets *b)
{
    free(b->bounds);
    free(b->ptrs);
    free(b->src);
    free(b->dst);
    free(b->src_md5);
    free(b->dst_md5);
}

/* Both sides' bucket digests, the target's on the worker meanwhile. */
static int buckets_digest(struct verifier *v, struct buckets *b)
{
    struct rdigest ignored;

    dworker_post_buckets(v->w, v->t, b);
    int rc = dbsrc_digest_buckets(v->src, v->t, b->ptrs, b->nbounds, b->src_md5, b->src,
                                  v->err, v->errlen);
    return target_finish(v, &ignored, rc != 0);
}

/* Bucket i of b: (bounds[i-1], bounds[i]], open at the ends. */
static int compare_bucket(struct verifier *v, const struct buckets *b, size_t i,
                          struct chunk *c)
{
    const char *lo = i > 0 ? b->bounds[i - 1].s : NULL;
    const char *hi = i < b->nbounds ? b->bounds[i].s : NULL;
    struct rdigest s = {.rows = b->src[i]}, d = {.rows = b->dst[i]};

    memcpy(s.md5, b->src_md5[i], sizeof(s.md5));
    memcpy(d.md5, b->dst_md5[i], sizeof(d.md5));
    if (digest_equal(&s, &d))
        return 0;
    if (chunk_load(v, c, lo, hi) != 0)
        return -1;
    v->cur = c;
    return compare_digests(v, lo, hi, 0, c->n, &s, &d);
}

static int verify_table(struct verifier *v)
{
    struct buckets b = {0};
    struct chunk c = {0};
    double t0 = now_s();
    int rc = -1;

    v->tr->table = v->t->name;
    if (dbsrc_count(v->src, v->t, &v->tr->source_rows, v->err, v->errlen) != 0 ||
        dbsrc_count(v->dst, v->t, &v->tr->target_rows, v->err, v->errlen) != 0)
        goto out;
    if (buckets_load(v, &b) != 0 || buckets_digest(v, &b) != 0)
        goto out;
    for (size_t i = 0; i <= b.nbounds; i++)
        if (compare_bucket(v, &b, i, &c) != 0)
            goto out;
    v->tr->seconds = now_s() - t0;
    rc = 0;
out:
    v->cur = NULL;
    buckets_free(&b);
    free(c.keys);
    return rc;
}

/* ---- the run ---- */

static int open_sides(const struct dbverify_opts *o, struct dbconv_tz *tz, struct verifier *v)
{
    int64_t batch = v->chunk_rows < MAX_BATCH_ROWS ? v->chunk_rows : MAX_BATCH_ROWS;
    struct dbsrc_opts so = {.layout = o->source_layout, .tz = tz, .batch_rows = batch};
    struct dbsrc_opts to = {.layout = DBSRC_LAYOUT_CURRENT, .batch_rows = batch};

    if (dbsrc_open(o->source, &so, &v->src, v->err, v->errlen) != 0 ||
        dbsrc_open(o->target, &to, &v->dst, v->err, v->errlen) != 0)
        return -1;
    if ((v->w = dworker_start(v->dst)) == NULL) {
        snprintf(v->err, v->errlen, "cannot start a thread for the target's digests");
        return -1;
    }
    return 0;
}

int dbverify_run(const struct dbverify_opts *o, struct dbverify_result *res, char *err,
                 size_t errlen)
{
    struct dbconv_tz *tz = NULL;
    struct verifier v = {.err = err, .errlen = errlen};
    size_t ntables;
    const struct dbtable *tables = dbrow_tables(&ntables);
    size_t room = sizeof(res->tables) / sizeof(res->tables[0]);
    int rc = -1;

    memset(res, 0, sizeof(*res));
    res->identical = true;
    v.chunk_rows = o->chunk_rows > 0 ? o->chunk_rows : DEFAULT_CHUNK_ROWS;
    v.leaf_rows = o->leaf_rows > 0 ? o->leaf_rows : DEFAULT_LEAF_ROWS;
    v.max_report = o->max_report > 0 ? o->max_report : DEFAULT_MAX_REPORT;
    if (o->source_timezone != NULL &&
        (tz = dbconv_tz_open(o->source_timezone, err, errlen)) == NULL)
        goto out;
    if (open_sides(o, tz, &v) != 0)
        goto out;
    res->source_layout = dbsrc_layout(v.src);
    for (size_t i = 0; i < ntables && i < room; i++) {
        v.t = &tables[i];
        v.tr = &res->tables[res->ntables++];
        if (verify_table(&v) != 0)
            goto out;
        if (v.tr->missing + v.tr->extra + v.tr->different > 0 ||
            v.tr->source_rows != v.tr->target_rows)
            res->identical = false;
    }
    rc = res->identical ? 0 : 1;
out:
    if (rc < 0)
        res->identical = false;
    dworker_stop(v.w);
    dbsrc_close(v.dst);
    dbsrc_close(v.src);
    dbconv_tz_close(tz);
    return rc;
}

void dbverify_result_free(struct dbverify_result *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->ntables; i++) {
        struct dbverify_table *tr = &res->tables[i];
        for (size_t k = 0; k < tr->ndiffs; k++)
            free(tr->diffs[k].columns);
        free(tr->diffs);
    }
    memset(res, 0, sizeof(*res));
}
