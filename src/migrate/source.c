#include "migrate/source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

const char *const migrate_dialects[] = {"sqlite", "postgres", NULL};

/* "a/b" (with `suffix` appended), newly allocated. */
static char *join(const char *a, const char *b, const char *suffix)
{
    size_t len = strlen(a) + strlen(b) + strlen(suffix) + 2;
    char *out = xmalloc(len);

    snprintf(out, len, "%s/%s%s", a, b, suffix);
    return out;
}

/* "NNNN_name.up.sql" parsed. */
struct file_name {
    int64_t version;
    char name[MIGRATE_NAME_MAX + 1];
    bool down;
};

bool migrate_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > MIGRATE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* 0 and *out for "NNNN_name.up.sql" / ".down.sql" (4 to 9 digits), -1
 * otherwise. */
static int parse_file_name(const char *file, struct file_name *out)
{
    const char *p = file, *name, *dot;
    int64_t v = 0;
    size_t digits = 0, len;

    while (*p >= '0' && *p <= '9' && digits < 10) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits < 4 || digits > 9 || *p != '_' || v == 0)
        return -1;
    name = p + 1;
    dot = strchr(name, '.');
    if (dot == NULL)
        return -1;
    if (strcmp(dot, ".up.sql") == 0)
        out->down = false;
    else if (strcmp(dot, ".down.sql") == 0)
        out->down = true;
    else
        return -1;
    len = (size_t)(dot - name);
    if (len == 0 || len > MIGRATE_NAME_MAX)
        return -1;
    memcpy(out->name, name, len);
    out->name[len] = '\0';
    if (!migrate_name_valid(out->name))
        return -1;
    out->version = v;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The whole file, NUL-terminated (caller frees), or NULL with a message. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0, got;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 8192;
            data = xrealloc(data, cap + 1);
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
    } while (got > 0 && len <= MIGRATE_SOURCE_MAX_FILE);
    if (ferror(f) || len > MIGRATE_SOURCE_MAX_FILE || memchr(data, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: %s", path,
                 ferror(f)                          ? strerror(errno)
                 : len > MIGRATE_SOURCE_MAX_FILE ? "larger than 16 MiB"
                                                    : "holds a NUL byte");
        free(data);
        data = NULL;
    } else {
        data[len] = '\0';
    }
    fclose(f);
    return data;
}

static char *keep(struct migrate_source *src, char *s)
{
    src->_strings = xrealloc(src->_strings, (src->_nstrings + 1) * sizeof(*src->_strings));
    src->_strings[src->_nstrings++] = s;
    return s;
}

/* The entry of `version` in src->_items (appended, unsorted, when new). */
static struct migration *entry(struct migrate_source *src, size_t *n, const struct file_name *fn)
{
    for (size_t i = 0; i < *n; i++) {
        if (src->_items[i].version == fn->version)
            return &src->_items[i];
    }
    src->_items = xrealloc(src->_items, (*n + 1) * sizeof(*src->_items));
    src->_items[*n] = (struct migration){.version = fn->version,
                                         .name = keep(src, xstrdup(fn->name))};
    return &src->_items[(*n)++];
}

static int by_version(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;

    return x->version < y->version ? -1 : x->version > y->version;
}

/* Read one file of the folder into its entry. */
static int load_file(struct migrate_source *src, size_t *n, const char *folder, const char *file,
                     char *err, size_t errlen)
{
    struct file_name fn;
    char *path = join(folder, file, "");
    struct migration *m;
    char *text = NULL;

    if (parse_file_name(file, &fn) != 0) {
        snprintf(err, errlen,
                 "%s: a migration file is named NNNN_name.up.sql or NNNN_name.down.sql"
                 " (name: lower-case letters, digits and _)",
                 path);
        goto out;
    }
    m = entry(src, n, &fn);
    if (strcmp(m->name, fn.name) != 0) {
        snprintf(err, errlen, "%s: version %04lld also has the name %s", path,
                 (long long)fn.version, m->name);
        goto out;
    }
    text = read_file(path, err, errlen);
    if (text == NULL)
        goto out;
    if (fn.down)
        m->down_sql = keep(src, text);
    else
        m->up_sql = keep(src, text);
out:
    free(path);
    return text != NULL ? 0 : -1;
}

static int load_dir(struct migrate_source *src, const char *folder, char *err, size_t errlen)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    size_t n = 0;
    int rc = 0;

    if (d == NULL) {
        snprintf(err, errlen, "%s: %s (--dir expects a folder per dialect, like migrations/)",
                 folder, strerror(errno));
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' && ends_with(e->d_name, ".sql"))
            rc = load_file(src, &n, folder, e->d_name, err, errlen);
    }
    closedir(d);
    if (rc != 0)
        return -1;
    qsort(src->_items, n, sizeof(*src->_items), by_version);
    for (size_t i = 0; i < n; i++) {
        if (src->_items[i].up_sql == NULL) {
            snprintf(err, errlen, "%s/%04lld_%s.down.sql has no up file", folder,
                     (long long)src->_items[i].version, src->_items[i].name);
            return -1;
        }
    }
    src->list = src->_items;
    src->n = n;
    return 0;
}

int migrate_source_open(struct migrate_source *src, const char *dir, const char *dialect,
                        char *err, size_t errlen)
{
    char *folder;
    int rc;

    memset(src, 0, sizeof(*src));
    if (dir == NULL) {
        src->list = migrate_embedded(dialect, &src->n);
        if (src->list == NULL) {
            snprintf(err, errlen, "no migrations are embedded for %s", dialect);
            return -1;
        }
        return 0;
    }
    folder = join(dir, dialect, "");
    rc = load_dir(src, folder, err, errlen);
    free(folder);
    if (rc != 0) {
        migrate_source_close(src);
        return -1;
    }
    src->dir = dir;
    return 0;
}

void migrate_source_close(struct migrate_source *src)
{
    if (src == NULL)
        return;
    for (size_t i = 0; i < src->_nstrings; i++)
        free(src->_strings[i]);
    free(src->_strings);
    free(src->_items);
    memset(src, 0, sizeof(*src));
}

/* ---- new ----------------------------------------------------------------- */

/* The highest version named in folder (0 when none or missing). */
static int64_t highest_in(const char *folder)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    int64_t max = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        struct file_name fn;
        if (parse_file_name(e->d_name, &fn) == 0 && fn.version > max)
            max = fn.version;
    }
    closedir(d);
    return max;
}

static const char *dialect_title(const char *dialect)
{
    return strcmp(dialect, "sqlite") == 0 ? "SQLite" : "PostgreSQL";
}

static void write_template(FILE *f, const char *dialect, const char *base, bool down)
{
    const char *title = dialect_title(dialect);

    if (down) {
        fprintf(f,
                "-- %s (%s), reversed: undo exactly what %s.up.sql does, newest change\n"
                "-- first, so that `todo migrate down` leaves the schema as it was before.\n\n",
                base, title, base);
        return;
    }
    fprintf(f,
            "-- %s (%s): what this migration changes, and why.\n"
            "--\n"
            "-- It runs in one transaction (together with its row in schema_migrations),\n"
            "-- statement by statement. To run it outside a transaction instead (e.g.\n"
            "-- CREATE INDEX CONCURRENTLY), make the first line exactly:\n"
            "--   " MIGRATE_NO_TRANSACTION_MARK "\n"
            "-- Every dialect's %s.up.sql must describe the same change.\n",
            base, title, base);
    if (strcmp(dialect, "sqlite") == 0)
        fputs("-- SQLite cannot alter most constraints in place: rebuild the table\n"
              "-- (docs/migrations.md, \"the SQLite table-rebuild pattern\").\n",
              f);
    fputs("\n", f);
}

/* Create `path` (never overwriting) from the template. */
static int create_file(const char *path, const char *dialect, const char *base, bool down,
                       char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f;

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    write_template(f, dialect, base, down);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
}

int migrate_new(const char *dir, const char *name, int64_t *version, char ***paths,
                size_t *npaths, char *err, size_t errlen)
{
    char base[MIGRATE_NAME_MAX + 16];
    char **made = NULL;
    size_t nmade = 0;
    int64_t max = 0;

    if (!migrate_name_valid(name)) {
        snprintf(err, errlen,
                 "invalid name '%s': use lower-case letters, digits and _ (at most %d)", name,
                 MIGRATE_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; migrate_dialects[i] != NULL; i++) {
        char *folder = join(dir, migrate_dialects[i], "");
        int64_t v = highest_in(folder);
        max = v > max ? v : max;
        free(folder);
    }
    snprintf(base, sizeof(base), "%04lld_%s", (long long)(max + 1), name);
    if (make_dir(dir, err, errlen) != 0)
        return -1;
    for (size_t i = 0; migrate_dialects[i] != NULL; i++) {
        char *folder = join(dir, migrate_dialects[i], "");
        int rc = make_dir(folder, err, errlen);
        for (int down = 0; down < 2 && rc == 0; down++) {
            char *path = join(folder, base, down ? ".down.sql" : ".up.sql");
            rc = create_file(path, migrate_dialects[i], base, down, err, errlen);
            if (rc == 0) {
                made = xrealloc(made, (nmade + 1) * sizeof(*made));
                made[nmade++] = path;
            } else {
                free(path);
            }
        }
        free(folder);
        if (rc != 0)
            goto fail;
    }
    *version = max + 1;
    *paths = made;
    *npaths = nmade;
    return 0;
fail:
    for (size_t i = 0; i < nmade; i++) {
        unlink(made[i]);
        free(made[i]);
    }
    free(made);
    return -1;
}
