/*
 * migrate/source: where migrations come from — the ones embedded in the
 * binary, or a directory laid out like the repository's migrations/ (one
 * subfolder per dialect holding NNNN_name.up.sql and NNNN_name.down.sql) —
 * and `todo migrate new`, which adds the next numbered pair to such a
 * directory.
 *
 * In a directory, files not ending in ".sql" are ignored; a ".sql" file
 * whose name does not follow the pattern, a version with two names, a
 * version with a down file and no up file, an unreadable file or one over
 * MIGRATE_SOURCE_MAX_FILE bytes is an error naming the file.
 *
 * Ownership: a migrate_source owns everything its list points to (for a
 * directory) or points into the binary (embedded); migrate_source_close()
 * frees it. Main thread (CLI); blocking file I/O.
 */
#ifndef TODO_MIGRATE_SOURCE_H
#define TODO_MIGRATE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migrate/migrate.h"

#define MIGRATE_SOURCE_MAX_FILE (16u << 20)
#define MIGRATE_NAME_MAX 64

/* The dialects every migration exists in, NULL-terminated. */
extern const char *const migrate_dialects[];

struct migrate_source {
    const struct migration *list; /* ascending by version */
    size_t n;
    const char *dir; /* NULL: embedded */
    /* private */
    struct migration *_items;
    char **_strings;
    size_t _nstrings;
};

/* Load the migrations of `dialect` from `dir` (NULL: the embedded ones).
 * 0, or -1 with a message in err (src then holds nothing to free). */
__attribute__((warn_unused_result)) int migrate_source_open(struct migrate_source *src,
                                                            const char *dir, const char *dialect,
                                                            char *err, size_t errlen);
void migrate_source_close(struct migrate_source *src); /* NULL and a closed one accepted */

/* `todo migrate new NAME`: create DIR/<dialect>/NNNN_NAME.up.sql and
 * .down.sql for every dialect, NNNN one above the highest version found in
 * any of them (0001 in an empty tree), from a commented template. Creates
 * DIR and its dialect folders when missing; never overwrites a file.
 * NAME: lower-case letters, digits and '_', at most MIGRATE_NAME_MAX.
 * Returns 0 with the version and the created paths (caller frees each and
 * the array), or -1 with a message (and nothing left behind). */
__attribute__((warn_unused_result)) int migrate_new(const char *dir, const char *name,
                                                    int64_t *version, char ***paths,
                                                    size_t *npaths, char *err, size_t errlen);

/* True when `name` is a valid migration name (see migrate_new). */
bool migrate_name_valid(const char *name);

#endif
