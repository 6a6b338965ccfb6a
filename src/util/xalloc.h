/*
 * util/xalloc: allocation that never returns NULL. On out-of-memory it
 * prints a message and aborts, so callers have no untested OOM branches.
 * Thread-safe. Free with free().
 */
#ifndef TODO_UTIL_XALLOC_H
#define TODO_UTIL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
