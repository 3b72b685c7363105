/* The envelope parser shared by the compiled receive helpers (_scan.c, _rxloop.c).
 *
 * parse_envelope reads the fixed encoding the recorder's fast path reads
 * ({"t":"…","s":N,"sch":N,"pub":N,"p":…}, keys in this order) → its three numbers,
 * 0 when the payload is not in that encoding (the caller then takes the slow path);
 * envelope_numbers does the same for an envelope inside a longer buffer (a poll answer).
 */
#ifndef PUSHBENCH_ENVELOPE_H
#define PUSHBENCH_ENVELOPE_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

static const char *
find(const char *hay, ssize_t n, const char *needle, ssize_t m)
{
    if (m > n) {
        return NULL;
    }
    const char *end = hay + n - m;
    for (const char *p = hay; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p + 1));
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p, needle, (size_t)m) == 0) {
            return p;
        }
    }
    return NULL;
}

/* A plain decimal integer, optionally negative, filling [s, e) exactly. */
static int
parse_int(const char *s, const char *e, int64_t *out)
{
    int neg = 0;
    if (s < e && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= e || e - s > 19) {
        return 0;
    }
    uint64_t v = 0;
    for (; s < e; s++) {
        unsigned d = (unsigned char)*s - '0';
        if (d > 9) {
            return 0;
        }
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) {
        return 0;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* The envelope starting at d, read up to end with the searches the recorder's pure
 * paths make (each key found after the one before) → its three numbers and where its
 * payload key ',"p":' starts; NULL when it is not in that encoding. */
static const char *
envelope_numbers(const char *d, const char *end, int64_t *seq, int64_t *sch, int64_t *pub)
{
    if (end - d < 6 || memcmp(d, "{\"t\":\"", 6) != 0) {
        return NULL;
    }
    const char *i = find(d + 6, end - (d + 6), "\"s\":", 4);
    if (i == NULL) {
        return NULL;
    }
    const char *j = find(i, end - i, ",\"sch\":", 7);
    if (j == NULL) {
        return NULL;
    }
    const char *k = find(j, end - j, ",\"pub\":", 7);
    if (k == NULL) {
        return NULL;
    }
    const char *m = find(k, end - k, ",\"p\":", 5);
    if (m == NULL) {
        return NULL;
    }
    if (!parse_int(i + 4, j, seq) || !parse_int(j + 7, k, sch) || !parse_int(k + 7, m, pub)) {
        return NULL;
    }
    return m;
}

/* One envelope → its three numbers (0: not recognised). */
static int
parse_envelope(const char *d, ssize_t n, int64_t *seq, int64_t *sch, int64_t *pub)
{
    return envelope_numbers(d, d + n, seq, sch, pub) != NULL;
}

#endif
