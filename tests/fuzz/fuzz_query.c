/*
 * Fuzz target: the query string of GET /api/v1/todos through
 * params_todo_query(). Accepted queries must give in-range values and a `q`
 * inside the caller's scratch; re-encoding the result and parsing it again
 * must give the same query.
 */
#include <inttypes.h>
#include <stdbool.h>

#include "api/params.h"
#include "fuzz.h"
#include "util/buf.h"
#include "util/utf8.h"

static const char *const sort_text[] = {
    [TODO_SORT_CREATED_AT_DESC] = "-created_at", [TODO_SORT_CREATED_AT] = "created_at",
    [TODO_SORT_UPDATED_AT] = "updated_at",       [TODO_SORT_UPDATED_AT_DESC] = "-updated_at",
    [TODO_SORT_TITLE] = "title",                 [TODO_SORT_TITLE_DESC] = "-title",
};

static void check_query(const struct todo_query *q, const char *scratch, size_t size)
{
    FUZZ_CHECK(q->user_id == NULL);
    FUZZ_CHECK(q->limit >= 1 && q->limit <= PARAMS_LIMIT_MAX);
    FUZZ_CHECK(q->offset >= 0);
    FUZZ_CHECK(q->completed >= -1 && q->completed <= 1);
    FUZZ_CHECK((unsigned)q->sort < sizeof(sort_text) / sizeof(sort_text[0]));
    if (!q->q)
        return;
    FUZZ_CHECK(q->q >= scratch && q->q < scratch + size + 1);
    size_t len = strnlen(q->q, (size_t)(scratch + size + 1 - q->q));
    FUZZ_CHECK(q->q + len < scratch + size + 1); /* NUL-terminated inside scratch */
    FUZZ_CHECK(len > 0 && utf8_valid(q->q, len) && utf8_count(q->q, len) <= PARAMS_Q_MAX);
}

/* Percent-encode everything but unreserved characters. */
static void append_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            buf_append_char(b, (char)*p);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, esc, 3);
        }
    }
}

static void check_round_trip(const struct todo_query *q)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_printf(&b, "limit=%d&offset=%" PRId64 "&sort=%s", q->limit, q->offset,
               sort_text[q->sort]);
    if (q->completed >= 0)
        buf_printf(&b, "&completed=%s", q->completed ? "true" : "false");
    if (q->q) {
        buf_append_str(&b, "&q=");
        append_encoded(&b, q->q);
    }
    FUZZ_CHECK(!b.overflow);
    char *scratch = malloc(b.len + 1);
    struct todo_query again;
    struct field_errors errs;
    FUZZ_CHECK(scratch && params_todo_query(b.data, b.len, scratch, &again, &errs) == 0);
    FUZZ_CHECK(again.limit == q->limit && again.offset == q->offset &&
               again.completed == q->completed && again.sort == q->sort);
    FUZZ_CHECK(q->q ? again.q && strcmp(again.q, q->q) == 0 : !again.q);
    free(scratch);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly the documented len + 1 bytes, so ASan sees any overrun. */
    char *scratch = malloc(size + 1);
    struct todo_query q;
    struct field_errors errs;
    FUZZ_CHECK(scratch);
    int rc = params_todo_query((const char *)data, size, scratch, &q, &errs);
    if (rc == 0) {
        FUZZ_CHECK(errs.count == 0);
        check_query(&q, scratch, size);
        check_round_trip(&q);
    } else {
        FUZZ_CHECK(rc == -1 && errs.count > 0);
        for (size_t i = 0; i < errs.count; i++)
            FUZZ_CHECK(memchr(errs.items[i].field, '\0', sizeof(errs.items[i].field)));
    }
    free(scratch);
    return 0;
}
