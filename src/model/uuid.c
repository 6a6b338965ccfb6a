#include "model/uuid.h"

#include <sodium.h>
#include <string.h>

#include "util/hex.h"

/*
 * Layout (RFC 9562 §5.7): 48-bit big-endian Unix milliseconds, 4-bit version
 * (7), 12-bit rand_a, 2-bit variant (10), 62-bit rand_b.
 *
 * Monotonicity (RFC 9562 §6.2, method 2): ids made by one thread within one
 * millisecond treat rand_a:rand_b as a 74-bit counter that grows by a random
 * step of 1..2^32, so they sort in creation order and stay unguessable. A new
 * millisecond (or a clock that went back) starts from fresh random bits whose
 * top bit is clear, so the counter cannot wrap in practice; if it ever would,
 * the timestamp moves on by one millisecond.
 */
struct uuid_state {
    int64_t ms;
    uint16_t rand_a; /* 12 bits */
    uint64_t rand_b; /* 62 bits */
};

static _Thread_local struct uuid_state state = {.ms = -1};

#define RAND_B_MASK ((UINT64_C(1) << 62) - 1)

static void fresh(struct uuid_state *s, int64_t ms)
{
    unsigned char r[10];
    randombytes_buf(r, sizeof(r));
    s->ms = ms;
    s->rand_a = (uint16_t)((r[0] & 0x07) << 8 | r[1]); /* top bit of 12 clear */
    uint64_t b = 0;
    for (int i = 2; i < 10; i++)
        b = b << 8 | r[i];
    s->rand_b = b & RAND_B_MASK;
}

static void step(struct uuid_state *s)
{
    uint64_t inc = (uint64_t)randombytes_uniform(UINT32_MAX) + 1;
    s->rand_b += inc;
    if (s->rand_b <= RAND_B_MASK)
        return;
    s->rand_b &= RAND_B_MASK;
    if (++s->rand_a <= 0xfff)
        return;
    fresh(s, s->ms + 1);
}

void uuid_format(const unsigned char u[16], char out[UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 0xf];
    }
    out[o] = '\0';
}

void uuid_v7(int64_t now_ms, char out[UUID_STR_LEN + 1])
{
    struct uuid_state *s = &state;
    if (now_ms < 0)
        now_ms = 0;
    if (now_ms == s->ms)
        step(s);
    else
        fresh(s, now_ms);

    unsigned char u[16];
    uint64_t ms = (uint64_t)s->ms;
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | (s->rand_a >> 8));
    u[7] = (unsigned char)(s->rand_a & 0xff);
    u[8] = (unsigned char)(0x80 | (s->rand_b >> 56));
    for (int i = 9; i < 16; i++)
        u[i] = (unsigned char)(s->rand_b >> (8 * (15 - i)));
    uuid_format(u, out);
}

bool uuid_parse(const char *s, size_t len, char out[UUID_STR_LEN + 1])
{
    bool hyphenated = len == UUID_STR_LEN;
    if (!hyphenated && len != 32)
        return false;
    unsigned char u[16];
    size_t i = 0;
    for (int b = 0; b < 16; b++) {
        if (hyphenated && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            i++;
        }
        int h = hex_digit(s[i]), l = hex_digit(s[i + 1]);
        if (h < 0 || l < 0)
            return false;
        u[b] = (unsigned char)(h << 4 | l);
        i += 2;
    }
    uuid_format(u, out);
    return true;
}
