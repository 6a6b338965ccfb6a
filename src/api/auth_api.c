/*
 * api/auth_api: register, login (JSON), token (OAuth2 password form), me.
 *
 * Password hashing and verification run on the offload pool (they take tens
 * of milliseconds by design); everything else on the worker's loop.
 * Passwords live only in xmalloc'd jobs and are wiped before free.
 */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "auth/token.h"
#include "http/offload.h"
#include "http/respond.h"
#include "model/timefmt.h"
#include "model/user.h"
#include "store/store.h"
#include "util/xalloc.h"

static void submit_job(struct reqctx *rc, struct offload_job *job)
{
    struct http_worker *w = rc->worker;
    rc->job = job;
    offload_submit(w->offload, &w->offload_client, job);
}

/* ---- register ----------------------------------------------------------- */

struct register_job {
    struct offload_job job; /* first */
    struct reqctx *rc;      /* valid unless cancelled */
    struct user_registration input;
    char hash[PASSWORD_HASH_MAX];
    int hash_status;
};

static void register_job_free(struct register_job *j)
{
    user_registration_free(&j->input);
    sodium_memzero(j->hash, sizeof(j->hash));
    free(j);
}

static void register_work(struct offload_job *job)
{
    struct register_job *j = (struct register_job *)job;
    j->hash_status = password_hash(j->input.password, j->hash);
}

static void register_stored(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status == STORE_CONFLICT) {
        respond_problem(rc, 409, NULL, "A user with this email already exists.");
        return;
    }
    if (res->status != STORE_OK) {
        respond_store_error(rc, res);
        return;
    }
    struct buf b;
    buf_init(&b, 64 * 1024);
    user_json_append(&b, res->user);
    respond_json(rc, 201, &b);
    buf_free(&b);
}

static void register_done(struct offload_job *job, bool cancelled)
{
    struct register_job *j = (struct register_job *)job;
    struct reqctx *rc = j->rc;
    if (cancelled)
        goto out;
    rc->job = NULL;
    if (j->hash_status != 0) {
        respond_problem(rc, 500, NULL, "Could not hash the password.");
        goto out;
    }
    int64_t now = timefmt_now_ms();
    char id[UUID_STR_LEN + 1];
    uuid_v7(now, id);
    struct user_new u = {
        .id = id, .email = j->input.email, .password_hash = j->hash,
        .name = j->input.name, .now_ms = now,
    };
    int st = store_user_create(rc->worker->store, &u, register_stored, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
out:
    register_job_free(j);
}

/* Hash the password on the offload pool; the job takes `input` over. */
static void register_start(struct reqctx *rc, struct user_registration input)
{
    struct register_job *j = xcalloc(1, sizeof(*j));
    j->input = input;
    j->rc = rc;
    j->job.work = register_work;
    j->job.done = register_done;
    submit_job(rc, &j->job);
}

void auth_api_register(struct reqctx *rc)
{
    const char *body;
    size_t len;
    if (!api_body(rc, API_BODY_JSON, &body, &len))
        return;
    struct user_registration input;
    struct json_error jerr;
    struct field_errors errs;
    field_errors_init(&errs);
    int st = user_registration_decode(body, len, &input, &jerr, &errs);
    if (st != 0)
        api_respond_decode_error(rc, st, &jerr, &errs);
    else
        register_start(rc, input);
}

/* ---- login / token --------------------------------------------------------- */

struct login_job {
    struct offload_job job; /* first */
    struct reqctx *rc;
    struct user_credentials creds;
    char user_id[UUID_STR_LEN + 1];
    char *hash; /* NULL: no such user (verified against a dummy for timing) */
    char *email;
    enum password_check check;
    char new_hash[PASSWORD_HASH_MAX]; /* set when check == PASSWORD_OK_REHASH */
    int new_hash_status;
};

static void login_job_free(struct login_job *j)
{
    if (j == NULL)
        return;
    user_credentials_free(&j->creds);
    free(j->hash);
    free(j->email);
    sodium_memzero(j->new_hash, sizeof(j->new_hash));
    free(j);
}

/* While the user lookup runs, the request's pool owns the job. */
static void login_slot_dispose(void *p)
{
    login_job_free(*(struct login_job **)p);
}

static void login_work(struct offload_job *job)
{
    struct login_job *j = (struct login_job *)job;
    j->check = password_verify(j->hash, j->creds.password);
    if (j->check == PASSWORD_OK_REHASH)
        j->new_hash_status = password_hash(j->creds.password, j->new_hash);
    sodium_memzero(j->creds.password, strlen(j->creds.password));
}

static void ignore_result(void *ctx, const struct store_result *res)
{
    (void)ctx;
    (void)res;
}

static void login_answer(struct reqctx *rc, struct login_job *j)
{
    const struct app *app = rc->worker->app;
    int64_t now_s = timefmt_now_ms() / 1000;
    char *token = token_issue(app->secret_key, app->secret_key_len, j->user_id, j->email, now_s,
                              app->token_lifetime_s);
    if (token == NULL) {
        respond_problem(rc, 500, NULL, "Could not issue a token.");
        return;
    }
    struct buf b;
    buf_init(&b, 16 * 1024);
    buf_append_str(&b, "{\"access_token\":");
    buf_append_json_str(&b, token);
    buf_append_str(&b, ",\"token_type\":\"bearer\",\"expires_in\":");
    buf_append_int(&b, app->token_lifetime_s);
    buf_append_char(&b, '}');
    free(token);
    respond_json(rc, 200, &b);
    buf_free(&b);
}

static void login_done(struct offload_job *job, bool cancelled)
{
    struct login_job *j = (struct login_job *)job;
    struct reqctx *rc = j->rc;
    if (cancelled)
        goto out;
    rc->job = NULL;
    if (j->hash == NULL || j->check == PASSWORD_MISMATCH) {
        respond_unauthorized(rc, "Incorrect email or password.");
        goto out;
    }
    if (j->check == PASSWORD_OK_REHASH && j->new_hash_status == 0) {
        /* Upgrade a legacy hash; the login does not wait for it. */
        int st = store_user_set_password_hash(rc->worker->store, j->user_id, j->new_hash,
                                              timefmt_now_ms(), ignore_result, NULL, NULL);
        (void)st;
    }
    login_answer(rc, j);
out:
    login_job_free(j);
}

static void login_found(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    struct login_job **slot = rc->state;
    struct login_job *j = *slot;
    if (res->status == STORE_OK && res->user->is_active) {
        memcpy(j->user_id, res->user->id, sizeof(j->user_id));
        j->hash = xstrdup(res->user->password_hash);
        j->email = xstrdup(res->user->email);
    } else if (res->status != STORE_OK && res->status != STORE_NOT_FOUND) {
        respond_store_error(rc, res);
        return;
    }
    *slot = NULL; /* the offload pool owns it now */
    submit_job(rc, &j->job);
}

/* Look the user up, then verify on the offload pool; the job takes `creds` over. */
static void login_start(struct reqctx *rc, struct user_credentials creds)
{
    struct login_job *j = xcalloc(1, sizeof(*j));
    j->creds = creds;
    j->rc = rc;
    j->job.work = login_work;
    j->job.done = login_done;
    struct login_job **slot = h2o_mem_alloc_shared(&rc->req->pool, sizeof(*slot),
                                                   login_slot_dispose);
    *slot = j;
    rc->state = slot;
    int st = store_user_by_email(rc->worker->store, j->creds.email, login_found, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
}

void auth_api_login(struct reqctx *rc)
{
    const char *body;
    size_t len;
    if (!api_body(rc, API_BODY_JSON, &body, &len))
        return;
    struct user_credentials creds;
    struct json_error jerr;
    struct field_errors errs;
    field_errors_init(&errs);
    int st = user_credentials_decode_json(body, len, &creds, &jerr, &errs);
    if (st != 0)
        api_respond_decode_error(rc, st, &jerr, &errs);
    else
        login_start(rc, creds);
}

void auth_api_token(struct reqctx *rc)
{
    const char *body;
    size_t len;
    if (!api_body(rc, API_BODY_FORM, &body, &len))
        return;
    struct user_credentials creds;
    struct field_errors errs;
    field_errors_init(&errs);
    int st = user_credentials_decode_form(body, len, &creds, &errs);
    if (st != 0)
        api_respond_decode_error(rc, st, NULL, &errs);
    else
        login_start(rc, creds);
}

/* ---- me ------------------------------------------------------------------ */

static void me_found(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status == STORE_NOT_FOUND || (res->status == STORE_OK && !res->user->is_active)) {
        respond_unauthorized(rc, "The token's user no longer exists.");
        return;
    }
    if (res->status != STORE_OK) {
        respond_store_error(rc, res);
        return;
    }
    struct buf b;
    buf_init(&b, 64 * 1024);
    user_json_append(&b, res->user);
    respond_json(rc, 200, &b);
    buf_free(&b);
}

void auth_api_me(struct reqctx *rc)
{
    if (!api_authenticate(rc))
        return;
    int st = store_user_by_id(rc->worker->store, rc->user_id, me_found, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
}
