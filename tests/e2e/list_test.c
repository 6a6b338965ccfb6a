/*
 * e2e: GET /api/v1/todos — paging, filters, search, sorting.
 *
 * Every test works only on its own user's todos, so it runs unchanged on a
 * shared database.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* GET /api/v1/todos?<qs>; asserts 200 and the envelope; caller decrefs. */
static json_t *list(const struct e2e_user *u, const char *qs)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/todos%s%s", qs && *qs ? "?" : "", qs ? qs : "");
    struct e2e_resp *r = e2e_get(path, u->token);
    E2E_STATUS(r, 200);
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "-");
    json_t *j = r->json;
    cr_assert(json_is_object(j) && json_object_size(j) == 4,
              "list must be exactly {items, total, limit, offset}: %s", e2e_excerpt(r));
    cr_assert(json_is_array(json_object_get(j, "items")), "%s", e2e_excerpt(r));
    cr_assert(e2e_int(j, "total") >= 0 && e2e_int(j, "limit") >= 1 && e2e_int(j, "offset") >= 0,
              "%s", e2e_excerpt(r));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "items"), i, t) E2E_TODO_SHAPE(t);
    json_incref(j);
    e2e_resp_free(r);
    return j;
}

static json_t *items(const json_t *page)
{
    return json_object_get(page, "items");
}

static const char *item_id(const json_t *page, size_t i)
{
    return e2e_str(json_array_get(items(page), i), "id");
}

/* Create todos with the given titles, a little apart in time, and return
 * their ids in creation order (caller frees the array and strings). */
static char **make_todos(const struct e2e_user *u, const char *const *titles, size_t n)
{
    char **ids = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *t = e2e_todo_new(u, titles[i]);
        ids[i] = strdup(e2e_str(t, "id"));
        json_decref(t);
        usleep(3000);
    }
    return ids;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

Test(list, envelope_defaults_and_order)
{
    struct e2e_user u;
    e2e_user_make(&u, "list");
    json_t *empty = list(&u, "");
    cr_assert_eq(json_array_size(items(empty)), 0);
    cr_assert_eq(e2e_int(empty, "total"), 0);
    cr_assert_eq(e2e_int(empty, "limit"), 100, "default limit is 100");
    cr_assert_eq(e2e_int(empty, "offset"), 0);
    json_decref(empty);

    const char *titles[] = {"first", "second", "third"};
    char **ids = make_todos(&u, titles, 3);
    json_t *p = list(&u, NULL);
    cr_assert_eq(e2e_int(p, "total"), 3);
    cr_assert_eq(json_array_size(items(p)), 3);
    /* default sort: -created_at */
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(item_id(p, (size_t)i), ids[2 - i], "default order is newest first");
    json_decref(p);
    free_ids(ids, 3);
}

Test(list, users_see_only_their_own)
{
    struct e2e_user a, b;
    e2e_user_make(&a, "lista");
    e2e_user_make(&b, "listb");
    json_t *t = e2e_todo_new(&a, "alice's");
    json_t *p = list(&b, "");
    cr_assert_eq(e2e_int(p, "total"), 0, "bob sees alice's todo");
    json_decref(p);
    p = list(&b, "q=alice");
    cr_assert_eq(e2e_int(p, "total"), 0);
    json_decref(p);
    p = list(&a, "");
    cr_assert_eq(e2e_int(p, "total"), 1);
    json_decref(p);
    json_decref(t);
}

Test(list, limit_offset_total)
{
    struct e2e_user u;
    e2e_user_make(&u, "paging");
    const char *titles[] = {"a", "b", "c", "d", "e"};
    char **ids = make_todos(&u, titles, 5);
    json_t *all = list(&u, "sort=created_at");
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(item_id(all, (size_t)i), ids[i]);

    json_t *p = list(&u, "sort=created_at&limit=2");
    cr_assert_eq(json_array_size(items(p)), 2);
    cr_assert_eq(e2e_int(p, "total"), 5);
    cr_assert_eq(e2e_int(p, "limit"), 2);
    cr_assert_eq(e2e_int(p, "offset"), 0);
    json_decref(p);

    p = list(&u, "sort=created_at&limit=2&offset=1");
    cr_assert_eq(json_array_size(items(p)), 2);
    cr_assert_str_eq(item_id(p, 0), ids[1]);
    cr_assert_str_eq(item_id(p, 1), ids[2]);
    cr_assert_eq(e2e_int(p, "offset"), 1);
    json_decref(p);

    p = list(&u, "sort=created_at&offset=4");
    cr_assert_eq(json_array_size(items(p)), 1);
    cr_assert_str_eq(item_id(p, 0), ids[4]);
    cr_assert_eq(e2e_int(p, "total"), 5);
    json_decref(p);

    p = list(&u, "offset=5");
    cr_assert_eq(json_array_size(items(p)), 0);
    cr_assert_eq(e2e_int(p, "total"), 5, "total counts all matches, not the page");
    json_decref(p);
    p = list(&u, "offset=1000000");
    cr_assert_eq(json_array_size(items(p)), 0);
    cr_assert_eq(e2e_int(p, "total"), 5);
    json_decref(p);

    p = list(&u, "limit=1");
    cr_assert_eq(json_array_size(items(p)), 1);
    json_decref(p);
    p = list(&u, "limit=1000");
    cr_assert_eq(json_array_size(items(p)), 5);
    cr_assert_eq(e2e_int(p, "limit"), 1000);
    json_decref(p);
    json_decref(all);
    free_ids(ids, 5);
}

Test(list, completed_filter)
{
    struct e2e_user u;
    e2e_user_make(&u, "filter");
    for (int i = 0; i < 5; i++) {
        json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:b}", "title", "f", "completed",
                                                  i % 2 == 0));
        json_decref(t);
    }
    json_t *p = list(&u, "completed=true");
    cr_assert_eq(e2e_int(p, "total"), 3);
    cr_assert_eq(json_array_size(items(p)), 3);
    size_t i;
    json_t *t;
    json_array_foreach(items(p), i, t) cr_assert(json_is_true(json_object_get(t, "completed")));
    json_decref(p);
    p = list(&u, "completed=false");
    cr_assert_eq(e2e_int(p, "total"), 2);
    json_array_foreach(items(p), i, t) cr_assert(json_is_false(json_object_get(t, "completed")));
    json_decref(p);
    p = list(&u, "completed=true&limit=1&offset=1");
    cr_assert_eq(e2e_int(p, "total"), 3);
    cr_assert_eq(json_array_size(items(p)), 1);
    json_decref(p);
}

static size_t count_q(const struct e2e_user *u, const char *raw_q)
{
    char *enc = e2e_urlencode(raw_q);
    char qs[400];
    snprintf(qs, sizeof(qs), "q=%s&limit=1000", enc);
    free(enc);
    json_t *p = list(u, qs);
    size_t n = json_array_size(items(p));
    cr_assert_eq((size_t)e2e_int(p, "total"), n, "q=%s: total disagrees with items", raw_q);
    json_decref(p);
    return n;
}

Test(list, q_substring_case_insensitive_title_or_description)
{
    struct e2e_user u;
    e2e_user_make(&u, "search");
    json_t *a = e2e_todo_create(&u, json_pack("{s:s}", "title", "Buy MILK today"));
    json_t *b = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "groceries", "description",
                                              "oat Milk and bread"));
    json_t *c = e2e_todo_create(&u, json_pack("{s:s, s:s, s:b}", "title", "bread", "description",
                                              "wholegrain", "completed", 1));
    json_t *d = e2e_todo_create(&u, json_pack("{s:s}", "title", "Caf\xc3\xa9 cr\xc3\xa8me"));
    cr_assert_eq(count_q(&u, "milk"), 2);
    cr_assert_eq(count_q(&u, "MILK"), 2);
    cr_assert_eq(count_q(&u, "mIlK"), 2);
    cr_assert_eq(count_q(&u, "bread"), 2, "title or description");
    cr_assert_eq(count_q(&u, "wholegrain"), 1);
    cr_assert_eq(count_q(&u, "uy mil"), 1, "substring with a space");
    cr_assert_eq(count_q(&u, "nothing-like-this"), 0);
    cr_assert_eq(count_q(&u, "caf\xc3\xa9"), 1, "non-ASCII substring");
    json_t *p = list(&u, "q=bread&completed=true");
    cr_assert_eq(e2e_int(p, "total"), 1);
    cr_assert_str_eq(item_id(p, 0), e2e_str(c, "id"));
    json_decref(p);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

Test(list, q_matches_literally)
{
    struct e2e_user u;
    e2e_user_make(&u, "literal");
    const char *titles[] = {"100% done", "100 done", "a_b", "axb", "back\\slash", "backslash",
                            "it's \"quoted\"", "its quoted"};
    char **ids = make_todos(&u, titles, 8);
    cr_assert_eq(count_q(&u, "%"), 1, "%% must not be a wildcard");
    cr_assert_eq(count_q(&u, "100%"), 1);
    cr_assert_eq(count_q(&u, "0% d"), 1);
    cr_assert_eq(count_q(&u, "_"), 1, "_ must not be a wildcard");
    cr_assert_eq(count_q(&u, "a_b"), 1);
    cr_assert_eq(count_q(&u, "\\"), 1, "backslash is literal");
    cr_assert_eq(count_q(&u, "k\\s"), 1);
    cr_assert_eq(count_q(&u, "'"), 1);
    cr_assert_eq(count_q(&u, "\"quoted\""), 1);
    cr_assert_eq(count_q(&u, "*"), 0);
    /* SQL-looking input is data, not SQL */
    cr_assert_eq(count_q(&u, "' OR '1'='1"), 0);
    cr_assert_eq(count_q(&u, "%' OR 1=1 --"), 0);
    cr_assert_eq(count_q(&u, "\\") + count_q(&u, "done"), 3);
    json_t *t = e2e_todo_new(&u, "Robert'); DROP TABLE todos;--");
    cr_assert_eq(count_q(&u, "'); DROP"), 1);
    json_t *p = list(&u, "limit=1000");
    cr_assert_eq(e2e_int(p, "total"), 9, "%s", "the table is still there, with every todo");
    json_decref(p);
    json_decref(t);
    free_ids(ids, 8);
}

/* Key of item `t` for `field` (created_at/updated_at as ms, title as text). */
static int cmp_key(const json_t *a, const json_t *b, const char *field)
{
    if (strcmp(field, "title") == 0)
        return strcmp(e2e_str(a, "title"), e2e_str(b, "title"));
    int64_t x = e2e_parse_ms(e2e_str(a, field)), y = e2e_parse_ms(e2e_str(b, field));
    return x < y ? -1 : x > y;
}

/* The page is ordered by `sort` with ties broken by id, in one consistent
 * direction for all tie groups. */
static void check_order(const json_t *page, const char *sort)
{
    bool desc = sort[0] == '-';
    const char *field = desc ? sort + 1 : sort;
    int tie_dir = 0;
    json_t *arr = items(page);
    for (size_t i = 1; i < json_array_size(arr); i++) {
        json_t *a = json_array_get(arr, i - 1), *b = json_array_get(arr, i);
        int c = cmp_key(a, b, field);
        if (desc)
            c = -c;
        cr_assert(c <= 0, "sort=%s: item %zu (%s) after item %zu (%s) is out of order", sort, i,
                  e2e_str(b, field), i - 1, e2e_str(a, field));
        if (c == 0) {
            int d = strcmp(e2e_str(a, "id"), e2e_str(b, "id"));
            cr_assert(d != 0, "sort=%s: the same id twice", sort);
            d = d < 0 ? 1 : -1;
            cr_assert(tie_dir == 0 || tie_dir == d,
                      "sort=%s: ties are not broken by id in one direction", sort);
            tie_dir = d;
        }
    }
}

static const char *const sorts[] = {"created_at",  "-created_at", "updated_at",
                                    "-updated_at", "title",       "-title"};

/* Todos with duplicate titles and shuffled update times. */
static size_t make_sort_fixture(const struct e2e_user *u)
{
    const char *titles[] = {"bravo", "alpha", "charlie", "alpha", "bravo", "delta", "alpha"};
    size_t n = sizeof(titles) / sizeof(titles[0]);
    char **ids = make_todos(u, titles, n);
    /* touch some older ones so updated_at order differs from created_at */
    const size_t touch[] = {1, 4, 0};
    for (size_t i = 0; i < 3; i++) {
        struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(ids[touch[i]]), u->token,
                                     "{\"completed\": true}");
        E2E_STATUS(r, 200);
        e2e_resp_free(r);
        usleep(3000);
    }
    free_ids(ids, n);
    return n;
}

Test(list, all_sorts_with_id_tiebreak)
{
    struct e2e_user u;
    e2e_user_make(&u, "sorts");
    size_t n = make_sort_fixture(&u);
    for (size_t s = 0; s < sizeof(sorts) / sizeof(sorts[0]); s++) {
        char qs[64];
        snprintf(qs, sizeof(qs), "sort=%s", sorts[s]);
        json_t *p = list(&u, qs);
        cr_assert_eq(json_array_size(items(p)), n, "sort=%s", sorts[s]);
        check_order(p, sorts[s]);
        json_decref(p);
    }
    /* titles ascending: the three alphas first, delta last */
    json_t *p = list(&u, "sort=title");
    cr_assert_str_eq(e2e_str(json_array_get(items(p), 0), "title"), "alpha");
    cr_assert_str_eq(e2e_str(json_array_get(items(p), 2), "title"), "alpha");
    cr_assert_str_eq(e2e_str(json_array_get(items(p), 6), "title"), "delta");
    json_decref(p);
    /* updated_at: the last touched todo (created first) is the newest */
    json_t *created = list(&u, "sort=created_at");
    json_t *updated = list(&u, "sort=-updated_at");
    cr_assert_str_eq(item_id(updated, 0), item_id(created, 0),
                     "-updated_at should start with the most recently modified todo");
    json_decref(created);
    json_decref(updated);
}

Test(list, paging_never_repeats_or_skips)
{
    struct e2e_user u;
    e2e_user_make(&u, "pages");
    size_t n = make_sort_fixture(&u);
    for (size_t s = 0; s < sizeof(sorts) / sizeof(sorts[0]); s++) {
        char qs[96];
        snprintf(qs, sizeof(qs), "sort=%s&limit=1000", sorts[s]);
        json_t *all = list(&u, qs);
        size_t seen = 0;
        for (size_t off = 0; off < n + 2; off += 2) {
            snprintf(qs, sizeof(qs), "sort=%s&limit=2&offset=%zu", sorts[s], off);
            json_t *p = list(&u, qs);
            cr_assert_eq((size_t)e2e_int(p, "total"), n);
            for (size_t i = 0; i < json_array_size(items(p)); i++) {
                cr_assert(seen < n, "sort=%s: more items than total", sorts[s]);
                cr_assert_str_eq(item_id(p, i), item_id(all, seen),
                                 "sort=%s: page at offset %zu differs from the full list",
                                 sorts[s], off);
                for (size_t k = 0; k < seen; k++)
                    cr_assert_str_neq(item_id(all, k), item_id(p, i), "sort=%s: repeated id",
                                      sorts[s]);
                seen++;
            }
            json_decref(p);
        }
        cr_assert_eq(seen, n, "sort=%s: paging saw %zu of %zu", sorts[s], seen, n);
        json_decref(all);
    }
}
