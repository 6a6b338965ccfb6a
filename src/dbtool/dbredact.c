/*
 * dbtool/dbredact: see dbredact.h. The password stretch is cut into
 * tokens once; each quoted span of the message is then tested against
 * every token (messages are short, URLs too: no index needed).
 */
#include "dbtool/dbredact.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define DELIMS "/:@?&=,#"

/* The possible password of url as [start, end), or false when it has none. */
static bool password_stretch(const char *url, const char **start, const char **end)
{
    const char *a = strstr(url, "://");
    const char *colon, *at;

    if (a == NULL)
        return false;
    a += 3;
    colon = strchr(a, ':');
    at = strrchr(a, '@');
    if (colon == NULL || at == NULL || at <= colon + 1)
        return false;
    *start = colon + 1;
    *end = at;
    return true;
}

/* True when span [s, s+n) contains a token of the stretch [p, e). */
static bool span_has_token(const char *s, size_t n, const char *p, const char *e)
{
    while (p < e) {
        size_t k = strcspn(p, DELIMS);
        if (p + k > e)
            k = (size_t)(e - p);
        for (size_t i = 0; k > 0 && i + k <= n; i++)
            if (memcmp(s + i, p, k) == 0)
                return true;
        p += k + 1;
    }
    return false;
}

void dbredact_message(char *msg, size_t msglen, const char *url)
{
    const char *p, *e;
    struct buf out;

    if (msg == NULL || msglen == 0 || url == NULL || !password_stretch(url, &p, &e))
        return;
    buf_init(&out, msglen * 2 + 16);
    for (const char *m = msg; *m != '\0';) {
        const char *close = *m == '"' ? strchr(m + 1, '"') : NULL;
        if (close == NULL) {
            buf_append_char(&out, *m++);
            continue;
        }
        size_t n = (size_t)(close - m - 1);
        if (span_has_token(m + 1, n, p, e))
            buf_append_str(&out, "\"***\"");
        else
            buf_append(&out, m, n + 2);
        m = close + 1;
    }
    snprintf(msg, msglen, "%.*s", (int)out.len, out.data != NULL ? out.data : "");
    buf_free(&out);
}
