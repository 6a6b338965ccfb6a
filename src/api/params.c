#include "api/params.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/urlenc.h"
#include "util/utf8.h"

enum param { P_LIMIT, P_OFFSET, P_COMPLETED, P_Q, P_SORT, P_COUNT };

static const char *const param_names[P_COUNT] = {"limit", "offset", "completed", "q", "sort"};

static const struct {
    const char *text;
    enum todo_sort sort;
} sorts[] = {
    {"created_at", TODO_SORT_CREATED_AT},   {"-created_at", TODO_SORT_CREATED_AT_DESC},
    {"updated_at", TODO_SORT_UPDATED_AT},   {"-updated_at", TODO_SORT_UPDATED_AT_DESC},
    {"title", TODO_SORT_TITLE},             {"-title", TODO_SORT_TITLE_DESC},
};

/* Parse an optionally signed decimal integer filling the whole string. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == len)
        return false;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false; /* beyond int64 either way */
        v = v * 10 + d;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static void parse_limit(const char *v, size_t len, struct todo_query *out,
                        struct field_errors *errs)
{
    int64_t n;
    if (!parse_int(v, len, &n) || n < 1 || n > PARAMS_LIMIT_MAX) {
        field_errors_add(errs, "limit", "must be an integer between 1 and %d", PARAMS_LIMIT_MAX);
        return;
    }
    out->limit = (int)n;
}

static void parse_offset(const char *v, size_t len, struct todo_query *out,
                         struct field_errors *errs)
{
    int64_t n;
    if (!parse_int(v, len, &n) || n < 0) {
        field_errors_add(errs, "offset", "must be an integer between 0 and %lld",
                         (long long)INT64_MAX);
        return;
    }
    out->offset = n;
}

static void parse_completed(const char *v, size_t len, struct todo_query *out,
                            struct field_errors *errs)
{
    if (len == 4 && memcmp(v, "true", 4) == 0)
        out->completed = 1;
    else if (len == 5 && memcmp(v, "false", 5) == 0)
        out->completed = 0;
    else
        field_errors_add(errs, "completed", "must be true or false");
}

static void parse_sort(const char *v, size_t len, struct todo_query *out,
                       struct field_errors *errs)
{
    for (size_t i = 0; i < sizeof(sorts) / sizeof(sorts[0]); i++) {
        if (strlen(sorts[i].text) == len && memcmp(v, sorts[i].text, len) == 0) {
            out->sort = sorts[i].sort;
            return;
        }
    }
    field_errors_add(errs, "sort",
                     "must be one of created_at, -created_at, updated_at, -updated_at, "
                     "title, -title");
}

/* `v` is already decoded into scratch (NUL-terminated). */
static void parse_q(const char *v, size_t len, struct todo_query *out, struct field_errors *errs)
{
    if (memchr(v, '\0', len)) {
        field_errors_add(errs, "q", "must not contain NUL characters");
        return;
    }
    if (!utf8_valid(v, len)) {
        field_errors_add(errs, "q", "must be valid UTF-8");
        return;
    }
    if (utf8_count(v, len) > PARAMS_Q_MAX) {
        field_errors_add(errs, "q", "must be at most %d characters", PARAMS_Q_MAX);
        return;
    }
    out->q = len > 0 ? v : NULL;
}

/* Decode a parameter name into `out`; false when it is not one we know
 * (then `out` holds a printable form for the error). */
static bool lookup_name(const char *raw, size_t raw_len, char out[64], enum param *which)
{
    long n = -1;
    if (raw_len < 64)
        n = urlenc_decode(raw, raw_len, out);
    if (n < 0 || memchr(out, '\0', (size_t)n)) {
        snprintf(out, 64, "%.*s", (int)(raw_len < 63 ? raw_len : 63), raw);
        return false;
    }
    for (int i = 0; i < P_COUNT; i++) {
        if (strcmp(out, param_names[i]) == 0) {
            *which = (enum param)i;
            return true;
        }
    }
    return false;
}

static void parse_value(enum param which, const char *v, size_t len, struct todo_query *out,
                        struct field_errors *errs)
{
    switch (which) {
    case P_LIMIT:
        parse_limit(v, len, out, errs);
        break;
    case P_OFFSET:
        parse_offset(v, len, out, errs);
        break;
    case P_COMPLETED:
        parse_completed(v, len, out, errs);
        break;
    case P_Q:
        parse_q(v, len, out, errs);
        break;
    case P_SORT:
        parse_sort(v, len, out, errs);
        break;
    default:
        break;
    }
}

int params_todo_query(const char *qs, size_t len, char *scratch, struct todo_query *out,
                      struct field_errors *errs)
{
    bool seen[P_COUNT] = {false};
    size_t pos = 0, name_len, raw_len, used = 0;
    const char *name, *raw;

    *out = (struct todo_query){
        .user_id = NULL,
        .limit = PARAMS_LIMIT_DEFAULT,
        .offset = 0,
        .completed = -1,
        .q = NULL,
        .sort = TODO_SORT_CREATED_AT_DESC,
    };
    field_errors_init(errs);
    while (urlenc_next_pair(qs, len, &pos, &name, &name_len, &raw, &raw_len)) {
        char key[64];
        enum param which;
        if (!lookup_name(name, name_len, key, &which)) {
            field_errors_add(errs, key, "unknown query parameter");
            continue;
        }
        if (seen[which]) {
            field_errors_add(errs, key, "must not be repeated");
            continue;
        }
        seen[which] = true;
        /* Each value decodes into its own slice of scratch (the slices never
         * exceed the query's length in total), so `q` can stay there. */
        char *v = scratch + used;
        long n = urlenc_decode(raw, raw_len, v);
        if (n < 0) {
            field_errors_add(errs, key, "has an invalid percent-encoding");
            continue;
        }
        used += (size_t)n + 1;
        if (n == 0 && which != P_Q) {
            field_errors_add(errs, key, "must not be empty");
            continue;
        }
        parse_value(which, v, (size_t)n, out, errs);
    }
    return errs->count > 0 ? -1 : 0;
}
