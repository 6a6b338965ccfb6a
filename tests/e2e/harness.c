/*
 * tests/e2e/harness: see harness.h for the contract.
 */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/hooks.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

extern char **environ;

/* ------------------------------------------------------------------ */
/* small utilities                                                    */
/* ------------------------------------------------------------------ */

static void *e2e_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char *e2e_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = e2e_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

static char *e2e_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *e2e_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *p = e2e_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void e2e_random_hex(char *out, size_t nhex)
{
    unsigned char raw[64];
    size_t nraw = (nhex + 1) / 2;
    if (nraw > sizeof(raw))
        abort();
    if (getrandom(raw, nraw, 0) != (ssize_t)nraw)
        abort();
    for (size_t i = 0; i < nhex; i++)
        out[i] = "0123456789abcdef"[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
    out[nhex] = '\0';
}

void e2e_uuid_v4(char out[37])
{
    char h[33];
    e2e_random_hex(h, 32);
    h[12] = '4';
    h[16] = "89ab"[h[16] % 4];
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

char *e2e_repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = e2e_xmalloc(ul * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

char *e2e_urlencode(const char *s)
{
    size_t n = strlen(s);
    char *o = e2e_xmalloc(n * 3 + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            o[j++] = (char)c;
        } else {
            o[j++] = '%';
            o[j++] = "0123456789ABCDEF"[c >> 4];
            o[j++] = "0123456789ABCDEF"[c & 15];
        }
    }
    o[j] = '\0';
    return o;
}

char *e2e_replace(const char *hay, const char *needle, const char *with)
{
    size_t nl = strlen(needle), wl = strlen(with), count = 0;
    if (nl == 0)
        return e2e_xstrdup(hay);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + nl, needle))
        count++;
    char *o = e2e_xmalloc(strlen(hay) + count * wl + 1);
    char *w = o;
    const char *p = hay;
    for (const char *q = strstr(p, needle); q; q = strstr(p, needle)) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, with, wl);
        w += wl;
        p = q + nl;
    }
    memcpy(w, p, strlen(p) + 1);
    return o;
}

bool e2e_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool e2e_is_rfc3339_ms(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof(pat) - 1)
        return false;
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
            return false;
    }
    return true;
}

int64_t e2e_parse_ms(const char *s)
{
    if (!e2e_is_rfc3339_ms(s))
        return -1;
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return (int64_t)t * 1000 + ms;
}

const char *e2e_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long e2e_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

char *e2e_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = e2e_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int e2e_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

char *e2e_logfmt_get(const char *line, const char *key)
{
    size_t kl = strlen(key);
    const char *p = line;
    while (*p && *p != '\n') {
        while (*p == ' ')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\n')
            p++;
        bool match = (size_t)(p - k) == kl && strncmp(k, key, kl) == 0;
        if (*p != '=') {
            continue;
        }
        p++;
        char *val = e2e_xmalloc(strlen(p) + 1);
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"' && *p != '\n') {
                if (*p == '\\' && p[1]) {
                    p++;
                    val[n++] = *p == 'n' ? '\n' : *p;
                } else {
                    val[n++] = *p;
                }
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\n')
                val[n++] = *p++;
        }
        val[n] = '\0';
        if (match)
            return val;
        free(val);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* HTTP client                                                        */
/* ------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

void e2e_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

const char *e2e_base(void)
{
    const char *b = getenv(E2E_ENV_BASE_URL);
    if (!b || !*b) {
        const char *why = getenv(E2E_ENV_START_ERROR);
        cr_assert_fail("the shared todo server is not running: %s", why ? why : "(unknown)");
    }
    return b;
}

struct sink {
    char *data;
    size_t len, cap;
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->data = realloc(s->data, cap);
        if (!s->data)
            abort();
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = '\0';
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sink_add(ud, p, size * n);
    return size * n;
}

static void headers_clear(struct e2e_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct e2e_resp *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        headers_clear(r); /* a new (final or interim) response starts */
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || r->nheaders >= E2E_MAX_HEADERS)
        return len;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct e2e_header *h = &r->headers[r->nheaders++];
    h->name = e2e_xmalloc(nl + 1);
    memcpy(h->name, p, nl);
    h->name[nl] = '\0';
    h->value = e2e_xmalloc((size_t)(end - v) + 1);
    memcpy(h->value, v, (size_t)(end - v));
    h->value[end - v] = '\0';
    return len;
}

struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t max = size * n;
    if (max > 16384)
        max = 16384; /* several chunks */
    size_t k = u->left < max ? u->left : max;
    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

struct e2e_resp *e2e_send(const struct e2e_req *rq)
{
    e2e_init();
    struct e2e_resp *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    const char *method = rq->method ? rq->method : "GET";
    const char *base = rq->base ? rq->base : e2e_base();
    snprintf(r->what, sizeof(r->what), "%s %.140s", method, rq->path);
    char *url = e2e_xasprintf("%s%s", base, rq->path);
    struct sink body = {0};
    struct curl_slist *hl = NULL;
    struct upload up = {0};
    char *tmp = NULL;

    CURL *c = curl_easy_init();
    if (!c)
        abort();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);

    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || rq->body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

    if (rq->body) {
        size_t len = rq->len ? rq->len : strlen(rq->body);
        if (rq->chunked) {
            up.p = rq->body;
            up.left = len;
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &up);
            hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        }
        if (!rq->expect_100)
            hl = curl_slist_append(hl, "Expect:");
        /* Without this curl would add application/x-www-form-urlencoded. */
        if (!rq->ctype)
            hl = curl_slist_append(hl, "Content-Type:");
    }
    if (rq->ctype) {
        tmp = e2e_xasprintf("Content-Type: %s", rq->ctype);
        hl = curl_slist_append(hl, tmp);
        free(tmp);
    }
    if (rq->token) {
        tmp = e2e_xasprintf("Authorization: Bearer %s", rq->token);
        hl = curl_slist_append(hl, tmp);
        free(tmp);
    }
    for (int i = 0; i < 8 && rq->hdr[i]; i++)
        hl = curl_slist_append(hl, rq->hdr[i]);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);

    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    } else {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        r->status = code; /* e.g. 413 answered before the whole body was sent */
        if (!r->error[0])
            snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    free(url);

    if (!body.data)
        sink_add(&body, "", 0);
    r->body = body.data;
    r->len = body.len;
    if (r->len > 0) {
        json_error_t jerr;
        r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, &jerr);
    }
    return r;
}

struct e2e_resp *e2e_get(const char *path, const char *token)
{
    struct e2e_req rq = {.method = "GET", .path = path, .token = token};
    return e2e_send(&rq);
}

struct e2e_resp *e2e_raw(const char *method, const char *path, const char *token,
                         const char *body)
{
    struct e2e_req rq = {.method = method, .path = path, .token = token,
                         .ctype = "application/json", .body = body};
    return e2e_send(&rq);
}

struct e2e_resp *e2e_jreq(const char *method, const char *path, const char *token, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct e2e_req rq = {.method = method, .path = path, .token = token,
                         .ctype = text ? "application/json" : NULL, .body = text};
    struct e2e_resp *r = e2e_send(&rq);
    free(text);
    return r;
}

void e2e_resp_free(struct e2e_resp *r)
{
    if (!r)
        return;
    headers_clear(r);
    json_decref(r->json);
    free(r->body);
    free(r);
}

const char *e2e_header(const struct e2e_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

const char *e2e_excerpt(const struct e2e_resp *r)
{
    static __thread char buf[420];
    size_t n = 0;
    for (size_t i = 0; i < r->len && n < sizeof(buf) - 4; i++) {
        unsigned char ch = (unsigned char)r->body[i];
        buf[n++] = (ch >= 0x20 && ch != 0x7f) || ch >= 0x80 ? (char)ch : '.';
    }
    if (r->len > n)
        memcpy(buf + n, "...", 3), n += 3;
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------------ */
/* assertions                                                         */
/* ------------------------------------------------------------------ */

void e2e_check_problem(const struct e2e_resp *r, int st, const char *file, int line)
{
    cr_assert_eq(r->status, (long)st, "%s:%d: %s: expected %d, got %ld %s %s", file, line,
                 r->what, st, r->status, r->error, e2e_excerpt(r));
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncasecmp(ct, "application/problem+json", 24) == 0,
              "%s:%d: %s: %d with Content-Type '%s', want application/problem+json: %s", file,
              line, r->what, st, ct ? ct : "(none)", e2e_excerpt(r));
    cr_assert(json_is_object(r->json), "%s:%d: %s: problem body is not a JSON object: %s", file,
              line, r->what, e2e_excerpt(r));
    cr_assert(e2e_str(r->json, "type"), "%s:%d: %s: problem lacks string 'type': %s", file,
              line, r->what, e2e_excerpt(r));
    cr_assert(e2e_str(r->json, "title"), "%s:%d: %s: problem lacks string 'title': %s", file,
              line, r->what, e2e_excerpt(r));
    cr_assert(e2e_str(r->json, "detail"), "%s:%d: %s: problem lacks string 'detail': %s", file,
              line, r->what, e2e_excerpt(r));
    cr_assert_eq(e2e_int(r->json, "status"), (long long)st,
                 "%s:%d: %s: problem 'status' is not %d: %s", file, line, r->what, st,
                 e2e_excerpt(r));
    json_t *errs = json_object_get(r->json, "errors");
    if (errs) {
        cr_assert(json_is_array(errs), "%s:%d: %s: 'errors' is not an array: %s", file, line,
                  r->what, e2e_excerpt(r));
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e) {
            cr_assert(e2e_str(e, "field") && e2e_str(e, "message"),
                      "%s:%d: %s: errors[%zu] lacks string field/message: %s", file, line,
                      r->what, i, e2e_excerpt(r));
        }
    }
}

bool e2e_problem_has_field(const struct e2e_resp *r, const char *field)
{
    json_t *errs = json_object_get(r->json, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e) {
        const char *f = e2e_str(e, "field");
        if (f && strcmp(f, field) == 0)
            return true;
    }
    return false;
}

bool e2e_problem_names(const struct e2e_resp *r, const char *name)
{
    if (e2e_problem_has_field(r, name))
        return true;
    const char *d = e2e_str(r->json, "detail");
    return d && strstr(d, name);
}

char *e2e_problem_canonical(const struct e2e_resp *r, const char *id)
{
    if (!json_is_object(r->json))
        return e2e_replace(r->body, id ? id : "", "<ID>");
    json_t *copy = json_deep_copy(r->json);
    json_object_del(copy, "request_id");
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    char *out = e2e_replace(text, id ? id : "", "<ID>");
    free(text);
    return out;
}

void e2e_check_401_bearer(const struct e2e_resp *r, const char *file, int line)
{
    e2e_check_problem(r, 401, file, line);
    const char *w = e2e_header(r, "WWW-Authenticate");
    cr_assert(w && strncasecmp(w, "Bearer", 6) == 0,
              "%s:%d: %s: 401 without 'WWW-Authenticate: Bearer' (got '%s')", file, line,
              r->what, w ? w : "(none)");
}

/* ------------------------------------------------------------------ */
/* users and todos                                                    */
/* ------------------------------------------------------------------ */

void e2e_unique_email(char *out, size_t outlen, const char *tag)
{
    char hex[17];
    e2e_random_hex(hex, 16);
    snprintf(out, outlen, "%s-%s@e2e.example.com", tag, hex);
}

struct e2e_resp *e2e_login(const char *base, const char *email, const char *password)
{
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct e2e_req rq = {.method = "POST", .base = base, .path = "/api/v1/auth/login",
                         .ctype = "application/json", .body = text};
    struct e2e_resp *r = e2e_send(&rq);
    free(text);
    return r;
}

void e2e_user_make(struct e2e_user *u, const char *tag)
{
    memset(u, 0, sizeof(*u));
    e2e_unique_email(u->email, sizeof(u->email), tag);
    char hex[17];
    e2e_random_hex(hex, 16);
    snprintf(u->password, sizeof(u->password), "pw-%s", hex);
    struct e2e_resp *r = e2e_jreq("POST", "/api/v1/auth/register", NULL,
                                  json_pack("{s:s, s:s}", "email", u->email, "password",
                                            u->password));
    E2E_STATUS(r, 201);
    const char *id = e2e_str(r->json, "id");
    cr_assert(id, "register: no id in %s", e2e_excerpt(r));
    snprintf(u->id, sizeof(u->id), "%s", id);
    e2e_resp_free(r);

    r = e2e_login(NULL, u->email, u->password);
    E2E_STATUS(r, 200);
    const char *tok = e2e_str(r->json, "access_token");
    cr_assert(tok && strlen(tok) < sizeof(u->token), "login: no usable token: %s",
              e2e_excerpt(r));
    snprintf(u->token, sizeof(u->token), "%s", tok);
    e2e_resp_free(r);
}

const char *e2e_todo_path(const char *id)
{
    static __thread char buf[256];
    snprintf(buf, sizeof(buf), "/api/v1/todos/%s", id);
    return buf;
}

json_t *e2e_todo_create(const struct e2e_user *u, json_t *body)
{
    struct e2e_resp *r = e2e_jreq("POST", "/api/v1/todos", u->token, body);
    E2E_STATUS(r, 201);
    cr_assert(json_is_object(r->json), "POST /api/v1/todos: body not an object: %s",
              e2e_excerpt(r));
    json_t *t = json_incref(r->json);
    e2e_resp_free(r);
    return t;
}

json_t *e2e_todo_new(const struct e2e_user *u, const char *title)
{
    return e2e_todo_create(u, json_pack("{s:s}", "title", title));
}

void e2e_check_todo(const json_t *t, const char *file, int line)
{
    static const char *const keys[] = {"id", "title", "description", "completed",
                                       "completed_at", "created_at", "updated_at", "version"};
    char *dump = json_dumps(t, JSON_COMPACT);
    cr_assert(json_is_object(t), "%s:%d: todo is not an object: %s", file, line, dump);
    cr_assert_eq(json_object_size(t), 8, "%s:%d: todo must have exactly 8 fields: %s", file,
                 line, dump);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert(json_object_get(t, keys[i]), "%s:%d: todo lacks '%s': %s", file, line,
                  keys[i], dump);
    cr_assert(e2e_is_uuid(e2e_str(t, "id")), "%s:%d: id is not a canonical UUID: %s", file,
              line, dump);
    cr_assert(json_is_string(json_object_get(t, "title")), "%s:%d: title: %s", file, line, dump);
    json_t *d = json_object_get(t, "description");
    cr_assert(json_is_string(d) || json_is_null(d), "%s:%d: description: %s", file, line, dump);
    json_t *c = json_object_get(t, "completed");
    cr_assert(json_is_boolean(c), "%s:%d: completed: %s", file, line, dump);
    json_t *ca = json_object_get(t, "completed_at");
    if (json_is_true(c))
        cr_assert(e2e_is_rfc3339_ms(json_string_value(ca)),
                  "%s:%d: completed todo needs an RFC 3339 ms completed_at: %s", file, line,
                  dump);
    else
        cr_assert(json_is_null(ca), "%s:%d: open todo needs completed_at null: %s", file, line,
                  dump);
    cr_assert(e2e_is_rfc3339_ms(e2e_str(t, "created_at")),
              "%s:%d: created_at not YYYY-MM-DDTHH:MM:SS.mmmZ: %s", file, line, dump);
    cr_assert(e2e_is_rfc3339_ms(e2e_str(t, "updated_at")),
              "%s:%d: updated_at not YYYY-MM-DDTHH:MM:SS.mmmZ: %s", file, line, dump);
    cr_assert(e2e_parse_ms(e2e_str(t, "updated_at")) >= e2e_parse_ms(e2e_str(t, "created_at")),
              "%s:%d: updated_at before created_at: %s", file, line, dump);
    cr_assert(e2e_int(t, "version") >= 1, "%s:%d: version must be an integer >= 1: %s", file,
              line, dump);
    free(dump);
}

/* ------------------------------------------------------------------ */
/* JWT                                                                */
/* ------------------------------------------------------------------ */

static char *b64url(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = e2e_xmalloc(n * 4 / 3 + 4);
    size_t j = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[j++] = tab[v >> 18];
        o[j++] = tab[(v >> 12) & 63];
        o[j++] = tab[(v >> 6) & 63];
        o[j++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[j++] = tab[v >> 18];
        o[j++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[j++] = tab[v >> 18];
        o[j++] = tab[(v >> 12) & 63];
        o[j++] = tab[(v >> 6) & 63];
    }
    o[j] = '\0';
    return o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
    unsigned char *o = e2e_xmalloc(n * 3 / 4 + 3);
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=')
            break;
        int v = b64val(s[i]);
        if (v < 0) {
            free(o);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (unsigned char)(acc >> bits);
        }
    }
    o[j] = 0;
    *outlen = j;
    return o;
}

static char *hs256(const char *data, size_t len, const void *key, size_t keylen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, md, &mdlen))
        abort();
    return b64url(md, mdlen);
}

char *e2e_jwt_sign(const char *header_json, const char *payload_json, const void *key,
                   size_t keylen)
{
    char *h = b64url((const unsigned char *)header_json, strlen(header_json));
    char *p = b64url((const unsigned char *)payload_json, strlen(payload_json));
    char *signing = e2e_xasprintf("%s.%s", h, p);
    char *sig = key ? hs256(signing, strlen(signing), key, keylen) : e2e_xstrdup("");
    char *tok = e2e_xasprintf("%s.%s", signing, sig);
    free(h);
    free(p);
    free(signing);
    free(sig);
    return tok;
}

char *e2e_jwt_forge(const char *sub, const char *email, long exp_offset_s)
{
    long now = (long)time(NULL);
    json_t *pl = json_pack("{s:s, s:s, s:I, s:I}", "sub", sub, "email", email, "iat",
                           (json_int_t)(now - (exp_offset_s < 0 ? 3600 : 0)), "exp",
                           (json_int_t)(now + exp_offset_s));
    char *payload = json_dumps(pl, JSON_COMPACT);
    json_decref(pl);
    char *tok = e2e_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, E2E_SECRET_KEY,
                             strlen(E2E_SECRET_KEY));
    free(payload);
    return tok;
}

json_t *e2e_jwt_payload(const char *token)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2)
        return NULL;
    size_t n;
    unsigned char *raw = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &n);
    if (!raw)
        return NULL;
    json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    return j;
}

bool e2e_jwt_verify(const char *token)
{
    const char *d2 = strrchr(token, '.');
    if (!d2)
        return false;
    char *sig = hs256(token, (size_t)(d2 - token), E2E_SECRET_KEY, strlen(E2E_SECRET_KEY));
    bool ok = strcmp(sig, d2 + 1) == 0;
    free(sig);
    return ok;
}

/* ------------------------------------------------------------------ */
/* concurrency                                                        */
/* ------------------------------------------------------------------ */

struct par {
    pthread_barrier_t barrier;
    e2e_thread_fn *fn;
    void *arg;
};

struct par_slot {
    struct par *par;
    int i;
};

static void *par_main(void *ud)
{
    struct par_slot *s = ud;
    pthread_barrier_wait(&s->par->barrier);
    s->par->fn(s->i, s->par->arg);
    return NULL;
}

void e2e_parallel(int n, e2e_thread_fn *fn, void *arg)
{
    e2e_init();
    struct par par = {.fn = fn, .arg = arg};
    pthread_t *th = e2e_xmalloc(sizeof(*th) * (size_t)n);
    struct par_slot *slots = e2e_xmalloc(sizeof(*slots) * (size_t)n);
    pthread_barrier_init(&par.barrier, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        slots[i] = (struct par_slot){&par, i};
        if (pthread_create(&th[i], NULL, par_main, &slots[i]) != 0)
            abort();
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&par.barrier);
    free(th);
    free(slots);
}

/* ------------------------------------------------------------------ */
/* servers                                                            */
/* ------------------------------------------------------------------ */

static const char *const config_vars[] = {
    "DATABASE_URL", "HOST", "PORT", "WORKERS", "SECRET_KEY", "ACCESS_TOKEN_EXPIRE_MINUTES",
    "LOG_LEVEL", "APP_ENV", NULL,
};

const char *e2e_todo_bin(void)
{
    const char *b = getenv("TODO_BIN");
    return b && *b ? b : "./todo";
}

const char *e2e_status_text(int wstatus)
{
    static __thread char buf[64];
    if (wstatus == -1)
        snprintf(buf, sizeof(buf), "did not exit in time");
    else if (WIFEXITED(wstatus))
        snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(wstatus));
    else
        snprintf(buf, sizeof(buf), "wait status %#x", wstatus);
    return buf;
}

struct envv {
    char **v;
    size_t n, cap;
};

static bool name_is(const char *entry, const char *name)
{
    size_t nl = strlen(name);
    return strncmp(entry, name, nl) == 0 && (entry[nl] == '=' || entry[nl] == '\0');
}

static bool in_list(const char *entry, const char *const *names)
{
    for (size_t i = 0; names && names[i]; i++) {
        if (name_is(entry, names[i]))
            return true;
    }
    return false;
}

static void env_put(struct envv *e, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t nl = eq ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], kv, nl) == 0 && e->v[i][nl] == '=') {
            free(e->v[i]);
            e->v[i] = e2e_xstrdup(kv);
            return;
        }
    }
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->v = realloc(e->v, e->cap * sizeof(char *));
        if (!e->v)
            abort();
    }
    e->v[e->n++] = e2e_xstrdup(kv);
    e->v[e->n] = NULL;
}

static void env_free(struct envv *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

static int make_temp_dir(char *out, size_t outlen)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, outlen, "%s/todo-e2e-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(out) ? 0 : -1;
}

static void build_env(struct e2e_server *s, const struct e2e_server_opts *o, struct envv *e)
{
    /* even an "empty" environment keeps PATH and the sanitizer settings */
    static const char *const always[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                         "TSAN_OPTIONS", NULL};
    for (char **p = environ; o->empty_env && *p; p++) {
        if (in_list(*p, always))
            env_put(e, *p);
    }
    for (char **p = environ; !o->empty_env && *p; p++) {
        if (in_list(*p, config_vars) || strncmp(*p, "E2E_", 4) == 0 || in_list(*p, o->unset))
            continue;
        env_put(e, *p);
    }
    if (!o->no_defaults) {
        char *db;
        const char *ext = getenv("DATABASE_URL");
        if (o->database_url)
            db = e2e_xstrdup(o->database_url);
        else if (ext && *ext)
            db = e2e_xstrdup(ext);
        else
            db = e2e_xasprintf("sqlite:///%s/todo.db", s->dir);
        char *kv = e2e_xasprintf("DATABASE_URL=%s", db);
        const char *defaults[] = {
            kv, "HOST=127.0.0.1", "PORT=0", "WORKERS=2", "SECRET_KEY=" E2E_SECRET_KEY,
            "ACCESS_TOKEN_EXPIRE_MINUTES=30", "LOG_LEVEL=info", NULL,
        };
        for (int i = 0; defaults[i]; i++) {
            if (!in_list(defaults[i], o->unset))
                env_put(e, defaults[i]);
        }
        free(kv);
        free(db);
    }
    for (size_t i = 0; o->set && o->set[i]; i++)
        env_put(e, o->set[i]);
    s->db_url[0] = '\0';
    for (size_t i = 0; i < e->n; i++) {
        if (name_is(e->v[i], "DATABASE_URL"))
            snprintf(s->db_url, sizeof(s->db_url), "%s", e->v[i] + strlen("DATABASE_URL="));
    }
}

int e2e_server_spawn(struct e2e_server *s, const struct e2e_server_opts *o, char *err,
                     size_t errlen)
{
    static const struct e2e_server_opts none = {0};
    static const char *const serve_args[] = {"serve", NULL};
    if (!o)
        o = &none;
    memset(s, 0, sizeof(*s));
    s->pid = -1;
    if (o->dir) {
        snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
    } else {
        if (make_temp_dir(s->dir, sizeof(s->dir)) != 0) {
            snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
            return -1;
        }
        s->own_dir = true;
    }
    snprintf(s->log, sizeof(s->log), "%s/server-%ld.log", s->dir, (long)mono_ms());

    struct envv env = {0};
    build_env(s, o, &env);
    const char *const *args = o->args ? o->args : serve_args;
    size_t na = 0;
    while (args[na])
        na++;
    char **argv = e2e_xmalloc((na + 2) * sizeof(char *));
    argv[0] = e2e_xstrdup(e2e_todo_bin());
    for (size_t i = 0; i < na; i++)
        argv[i + 1] = e2e_xstrdup(args[i]);
    argv[na + 1] = NULL;

    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        snprintf(err, errlen, "open %s: %s", s->log, strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(logfd);
        goto out;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(126);
        close_range(3, ~0U, 0);
        if (chdir(s->dir) != 0)
            _exit(126);
        execve(argv[0], argv, env.v);
        dprintf(2, "e2e: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    s->pid = pid;
out:
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
    env_free(&env);
    return s->pid > 0 ? 0 : -1;
}

int e2e_server_wait(struct e2e_server *s, int timeout_ms, int *wstatus)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = -1;
            if (wstatus)
                *wstatus = st;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_ms() >= deadline)
            return -1;
        sleep_ms(5);
    }
}

int e2e_server_stop(struct e2e_server *s, int sig, int timeout_ms)
{
    if (s->pid <= 0)
        return -1;
    int st = -1;
    kill(s->pid, sig);
    if (e2e_server_wait(s, timeout_ms, &st) != 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        s->pid = -1;
        return -1;
    }
    return st;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void e2e_server_cleanup(struct e2e_server *s)
{
    if (s->pid > 0)
        e2e_server_stop(s, SIGKILL, 5000);
    if (s->own_dir && s->dir[0])
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->own_dir = false;
}

bool e2e_log_wait(const char *log_path, const char *needle, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        char *text = e2e_read_file(log_path, NULL);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        if (mono_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

/* The value of `key` in the first complete `msg=listening` line of `text`
 * (caller frees), NULL when there is no such line (yet) or no such key. */
static char *listening_value(const char *text, const char *key)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl)
            break; /* only complete lines */
        size_t n = (size_t)(nl - line);
        char *copy = e2e_xmalloc(n + 1);
        memcpy(copy, line, n);
        copy[n] = '\0';
        char *msg = e2e_logfmt_get(copy, "msg");
        bool listening = msg && strcmp(msg, "listening") == 0;
        char *val = listening ? e2e_logfmt_get(copy, key) : NULL;
        free(msg);
        free(copy);
        if (listening)
            return val;
        line = nl + 1;
    }
    return NULL;
}

/* The port from the `msg=listening addr=HOST:PORT` line, 0 when not there yet. */
static int find_listening(const char *text)
{
    char *addr = listening_value(text, "addr");
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    int port = colon ? (int)strtol(colon + 1, NULL, 10) : 0;
    free(addr);
    return port;
}

static bool is_postgres_url(const char *url)
{
    return strncasecmp(url, "postgres://", 11) == 0 || strncasecmp(url, "postgresql://", 13) == 0 ||
           strncasecmp(url, "postgresql+", 11) == 0;
}

/* The server really uses the database it was given: its listening line says
 * database=postgres...://...HOST:PORT... for a PostgreSQL URL (HOST:PORT
 * taken from the URL) and database=sqlite... otherwise. 0, or -1 with a
 * reason in err. */
static int check_database(const struct e2e_server *s, char *err, size_t errlen)
{
    char *text = e2e_read_file(s->log, NULL);
    char *label = text ? listening_value(text, "database") : NULL;
    int rc = -1;
    free(text);
    if (!label) {
        snprintf(err, errlen, "no database=... in the server's listening line (%s)", s->log);
        return -1;
    }
    if (is_postgres_url(s->db_url)) {
        /* HOST:PORT: after the userinfo ('@'), up to the path or query */
        const char *auth = strstr(s->db_url, "://") + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *hp = auth;
        for (size_t i = 0; i < alen; i++) {
            if (auth[i] == '@')
                hp = auth + i + 1; /* the last '@' ends the userinfo */
        }
        size_t hlen = alen - (size_t)(hp - auth);
        char *want = e2e_xasprintf("%.*s", (int)hlen, hp);
        if (strncasecmp(label, "postgres", 8) == 0 && strstr(label, want))
            rc = 0;
        else
            snprintf(err, errlen, "DATABASE_URL is PostgreSQL (%s) but the server says database=%s",
                     want, label);
        free(want);
    } else if (strncasecmp(label, "sqlite", 6) == 0) {
        rc = 0;
    } else {
        snprintf(err, errlen, "expected an SQLite database, the server says database=%s", label);
    }
    free(label);
    return rc;
}

static void tail_into(char *err, size_t errlen, const char *prefix, const char *log)
{
    char *text = e2e_read_file(log, NULL);
    const char *t = text ? text : "";
    size_t n = strlen(t);
    size_t keep = errlen > 200 ? errlen - 200 : errlen / 2;
    snprintf(err, errlen, "%s; server output: %s", prefix, n > keep ? t + n - keep : t);
    free(text);
}

int e2e_server_start(struct e2e_server *s, const struct e2e_server_opts *o, char *err,
                     size_t errlen)
{
    if (e2e_server_spawn(s, o, err, errlen) != 0)
        return -1;
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        char *text = e2e_read_file(s->log, NULL);
        int port = text ? find_listening(text) : 0;
        free(text);
        if (port > 0) {
            s->port = port;
            snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", port);
            return 0;
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = -1;
            char why[96];
            if (WIFEXITED(st))
                snprintf(why, sizeof(why), "server exited with status %d before listening",
                         WEXITSTATUS(st));
            else
                snprintf(why, sizeof(why), "server killed by signal %d before listening",
                         WTERMSIG(st));
            tail_into(err, errlen, why, s->log);
            return -1;
        }
        if (mono_ms() >= deadline) {
            tail_into(err, errlen, "no 'msg=listening addr=...' line within 10 s", s->log);
            e2e_server_stop(s, SIGKILL, 5000);
            return -1;
        }
        sleep_ms(10);
    }
}

void e2e_server_start_or_fail(struct e2e_server *s, const struct e2e_server_opts *o)
{
    char err[2048];
    if (e2e_server_start(s, o, err, sizeof(err)) != 0) {
        e2e_server_cleanup(s);
        cr_assert_fail("could not start todo serve: %s", err);
    }
}

int e2e_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

bool e2e_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool open_ = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return open_;
}

int e2e_run(const char *const *args, const char *const *env, char **out, int timeout_ms)
{
    const char *const *set = env;
    struct e2e_server s;
    char err[512];
    struct e2e_server_opts o = {.args = args, .set = set, .no_defaults = true, .empty_env = true};
    int st = -1;
    if (e2e_server_spawn(&s, &o, err, sizeof(err)) == 0) {
        if (e2e_server_wait(&s, timeout_ms, &st) != 0) {
            e2e_server_stop(&s, SIGKILL, 2000);
            st = -1;
        }
        if (out)
            *out = e2e_read_file(s.log, NULL);
        e2e_server_cleanup(&s);
    } else if (out) {
        *out = e2e_xstrdup(err);
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* the shared server: runner-process hooks and main                   */
/* ------------------------------------------------------------------ */

int e2e_server_wait_ready(const struct e2e_server *s, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        struct e2e_req rq = {.base = s->base, .path = "/readyz"};
        struct e2e_resp *r = e2e_send(&rq);
        bool ok = r->status == 200;
        if (!ok && mono_ms() >= deadline)
            snprintf(err, errlen, "listening, but /readyz still answers %ld %s %s after %d ms "
                     "(database %s unreachable?)", r->status, r->error, e2e_excerpt(r),
                     timeout_ms, s->db_url);
        e2e_resp_free(r);
        if (ok)
            return 0;
        if (mono_ms() >= deadline)
            return -1;
        sleep_ms(50);
    }
}

static struct e2e_server shared;
static bool shared_started;
static bool shared_exit_ok = true;
static char shared_exit_text[160];
static size_t stat_passed, stat_failed, stat_skipped;
static bool stats_seen;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    char err[4096];
    int rc = e2e_server_start(&shared, NULL, err, sizeof(err));
    if (rc == 0 && (check_database(&shared, err, sizeof(err)) != 0 ||
                    e2e_server_wait_ready(&shared, 20000, err, sizeof(err)) != 0)) {
        e2e_server_stop(&shared, SIGKILL, 5000);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "e2e: could not start the shared server: %s\n", err);
        setenv(E2E_ENV_START_ERROR, err, 1);
        e2e_server_cleanup(&shared);
        shared_exit_ok = false;
        snprintf(shared_exit_text, sizeof(shared_exit_text), "server never started");
        return;
    }
    shared_started = true;
    setenv(E2E_ENV_BASE_URL, shared.base, 1);
    setenv(E2E_ENV_SERVER_LOG, shared.log, 1);
    setenv(E2E_ENV_DB_URL, shared.db_url, 1);
    char *text = e2e_read_file(shared.log, NULL);
    char *label = text ? listening_value(text, "database") : NULL;
    fprintf(stderr, "e2e: server pid %d at %s, database %s, log %s\n", (int)shared.pid,
            shared.base, label ? label : "?", shared.log);
    free(label);
    free(text);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    stats_seen = true;
    stat_passed = stats->tests_passed;
    stat_failed = stats->tests_failed; /* includes crashed tests */
    stat_skipped = stats->tests_skipped;
    if (!shared_started)
        return;
    int st = e2e_server_stop(&shared, SIGTERM, 15000);
    if (st == -1) {
        shared_exit_ok = false;
        snprintf(shared_exit_text, sizeof(shared_exit_text),
                 "did not exit within 15 s of SIGTERM (killed)");
    } else if (WIFEXITED(st)) {
        shared_exit_ok = WEXITSTATUS(st) == 0;
        snprintf(shared_exit_text, sizeof(shared_exit_text), "exited with status %d after SIGTERM",
                 WEXITSTATUS(st));
    } else {
        shared_exit_ok = false;
        snprintf(shared_exit_text, sizeof(shared_exit_text), "killed by signal %d after SIGTERM",
                 WTERMSIG(st));
    }
}

int main(int argc, char **argv)
{
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true))
        rc = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    if (!stats_seen)
        return rc; /* --help, --list, ... */
    size_t failed = stat_failed;
    if (shared_started || !shared_exit_ok) {
        fprintf(stderr, "e2e: shared server %s%s\n", shared_exit_text,
                shared_exit_ok ? "" : " -- FAILED");
        if (!shared_exit_ok) {
            failed++;
            rc = 1;
        }
    }
    if (rc == 0 && failed == 0) {
        e2e_server_cleanup(&shared);
    } else if (shared.dir[0] && shared.own_dir) {
        fprintf(stderr, "e2e: kept %s (server log %s)\n", shared.dir, shared.log);
    }
    if (stat_skipped)
        fprintf(stderr, "e2e: %zu skipped\n", stat_skipped);
    fflush(stdout);
    fprintf(stderr, "%zu passed, %zu failed\n", stat_passed, failed);
    return rc || failed ? 1 : 0;
}
