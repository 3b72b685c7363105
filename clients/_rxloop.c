/* The compiled receive loop of the light WebSocket and SSE clients (pushbench.clients.rxengine).
 *
 * Optional: without it (or with PUSHBENCH_NO_SPEEDUPS=1 / PUSHBENCH_NO_RX_LOOP=1) every
 * connection stays on its asyncio protocol. What it saves: at the default cells' rates
 * every read carries one message, and on the asyncio path each costs an event-loop
 * wake-up, a Python callback, a bytes object and a codec call. Here one thread runs one
 * epoll loop over all of a worker's subscriber sockets with the GIL released: recv,
 * clock_gettime(CLOCK_MONOTONIC) right after it (the read's recv_ns, as on the asyncio
 * path), frames or events parsed, envelopes scanned (_envelope.h) into the recorder's
 * numpy arrays (held through the buffer protocol).
 *
 * Engine(seq, sch, pub, recv, conns, n, overflow)
 *   add(fd, conn, kind, leftover, recv_ns, framing, left, last_id) -> id
 *       kind 0: WebSocket frames (server to client: unmasked; Ping answered with a
 *       masked Pong written with send(); Close ends the connection with its code);
 *       kind 1: an SSE body, framing 0 until close, 1 Content-Length (left bytes),
 *       2 chunked; last_id the Last-Event-ID the stream resumes from.
 *       leftover: bytes that came with the handshake, parsed now with recv_ns.
 *   remove(id)     stop reading id (our side ends it); synchronous.
 *   release(id)    forget an ended id.
 *   info(id) -> (ended, status, code, error, messages, last_seq, last_id, retry_ms,
 *                received)   received: the bytes the loop read
 *   run(callback)  the loop, in the calling thread, until stop(); callback() is called
 *       with the GIL every SYNC_NS while receipts arrive and when something ended.
 *   take() -> (n, overflow, updates, slow, ended)   what changed since the last take:
 *       updates [(id, messages, last_seq, last_id or None, retry_ms)], slow
 *       [(id, conn, payload, recv_ns)] (payloads the fast parse did not recognise: the caller
 *       records them with the recorder's json path), ended [id].
 *   set_counts(n, overflow)   after the caller recorded the slow payloads.
 *   stop()         end run() (thread-safe).
 *   close()        release the arrays and descriptors.
 *   probe(interval_ns)   the loop's own lag probe: a timerfd in its epoll set, due
 *       interval_ns after each firing was handled; how late each firing was handled is
 *       kept (the worker's LoopLagMonitor, measured in this thread: an asyncio timer
 *       on the worker's idle loop cost ~2.5x the wake-up of a bare epoll_wait).
 *   lag(reset) -> (max_ns, max_at_ns, sum_ns, samples, counts)   counts per LAG_EDGES
 *       bucket (the last: >= its last edge); reset forgets them (the firing in
 *       flight is not counted). Readable after close().
 *
 * Locking: `mu` is held by the loop whenever it touches connection state (not while in
 * epoll_wait or the callback); every method takes it with the GIL released while
 * waiting, so a method never races the loop and never deadlocks with it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "_envelope.h"
#include "_receipts.h"

#define READ_SIZE 65536
#define MAX_FRAME (64 * 1024 * 1024)
#define SYNC_NS 10000000LL /* receipts reach the Python counters within 10 ms */
#define MAX_EVENTS 256
/* the lag histogram's edges (µs), as pushbench.clients.recorder.LoopLagMonitor.EDGES_US */
static const int64_t LAG_EDGES_US[] = {100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};
#define LAG_BUCKETS (sizeof(LAG_EDGES_US) / sizeof(LAG_EDGES_US[0]) + 1)
static char LAG_TAG; /* the epoll data of the probe's timerfd */

enum { RUNNING = 0, ST_CLOSED = 1, ST_EOF = 2, ST_ERROR = 3, ST_REMOVED = 4, ST_DONE = 5 };
enum { K_WS = 0, K_SSE = 1 };
enum { F_CLOSE = 0, F_LENGTH = 1, F_CHUNKED = 2 };
enum { C_SIZE = 0, C_DATA = 1, C_DATA_END = 2, C_TRAILER = 3 };

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int
buf_put(Buf *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            return -1;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    return 0;
}

typedef struct Slow {
    struct Slow *next;
    Py_ssize_t id;
    uint32_t conn;
    int64_t recv_ns;
    size_t len;
    char data[];
} Slow;

typedef struct Conn {
    Py_ssize_t id;
    int fd, kind, status, code, in_epoll, dirty, ended_reported;
    uint32_t conn;
    char error[160];
    Buf in;        /* received bytes not parsed yet */
    int64_t messages, last_seq, received;
    /* WebSocket: a fragmented message being reassembled */
    int in_msg;
    Buf msg;
    /* SSE: body framing, then the event stream */
    int framing, chunk;
    int64_t left;
    int cr, start, ndata, id_changed;
    Buf line, data, idbuf, last_id;
    int64_t retry_ms;
    int64_t comments;
    struct Conn *zombie_next;
} Conn;

typedef struct {
    PyObject_HEAD
    Receipts rows; /* held while have_views */
    int have_views;
    Py_ssize_t n, overflow;
    int ep, evfd;
    pthread_mutex_t mu;
    Conn **table;
    Py_ssize_t ntable;
    Conn *zombies;
    Slow *slow_head, *slow_tail;
    int pending_end, stop, running, dirty;
    char *rbuf;
    uint32_t mask_state;
    /* the lag probe (probe(), lag()) */
    int tfd, lag_discard;
    int64_t lag_interval, lag_due, lag_max, lag_max_at, lag_sum, lag_samples;
    int64_t lag_counts[LAG_BUCKETS];
} Engine;

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
lock(Engine *e)
{
    if (pthread_mutex_trylock(&e->mu) != 0) {
        Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&e->mu);
        Py_END_ALLOW_THREADS
    }
}

static void
unlock(Engine *e)
{
    pthread_mutex_unlock(&e->mu);
}

/* --- ending a connection ------------------------------------------------------------ */

static void
end_conn(Engine *e, Conn *c, int status, int code, const char *error)
{
    if (c->status != RUNNING) {
        return;
    }
    c->status = status;
    c->code = code;
    if (error != NULL) {
        snprintf(c->error, sizeof c->error, "%s", error);
    }
    if (c->in_epoll) {
        epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
        c->in_epoll = 0;
    }
    e->pending_end = 1;
}

static void
conn_free(Conn *c)
{
    free(c->in.p);
    free(c->msg.p);
    free(c->line.p);
    free(c->data.p);
    free(c->idbuf.p);
    free(c->last_id.p);
    free(c);
}

/* --- one message ------------------------------------------------------------------------- */

static void
record(Engine *e, Conn *c, const char *p, size_t len, int64_t recv_ns)
{
    int64_t seq, sch, pub;
    c->messages++;
    c->dirty = 1;
    e->dirty = 1;
    if (parse_envelope(p, (ssize_t)len, &seq, &sch, &pub)) {
        if (e->n < e->rows.capacity) {
            receipts_add(&e->rows, &e->n, seq, sch, pub, recv_ns, c->conn);
        }
        else {
            e->overflow++;
        }
        if (seq > c->last_seq) {
            c->last_seq = seq;
        }
        return;
    }
    Slow *s = malloc(sizeof(Slow) + len);
    if (s == NULL) {
        end_conn(e, c, ST_ERROR, 0, "out of memory");
        return;
    }
    s->next = NULL;
    s->id = c->id;
    s->conn = c->conn;
    s->recv_ns = recv_ns;
    s->len = len;
    memcpy(s->data, p, len);
    if (e->slow_tail) {
        e->slow_tail->next = s;
    }
    else {
        e->slow_head = s;
    }
    e->slow_tail = s;
    e->pending_end = 1; /* the caller records it: sync soon */
}

/* --- WebSocket ---------------------------------------------------------------------------- */

static void
send_pong(Engine *e, Conn *c, const unsigned char *payload, size_t len)
{
    unsigned char out[2 + 4 + 125];
    uint32_t x = e->mask_state; /* xorshift32: a fresh masking key per frame */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    e->mask_state = x;
    unsigned char key[4] = {x & 0xff, (x >> 8) & 0xff, (x >> 16) & 0xff, x >> 24};
    out[0] = 0x8A;
    out[1] = 0x80 | (unsigned char)len;
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < len; i++) {
        out[6 + i] = payload[i] ^ key[i & 3];
    }
    (void)send(c->fd, out, 6 + len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Parse the frames in c->in; returns the bytes consumed. */
static size_t
ws_parse(Engine *e, Conn *c, int64_t recv_ns)
{
    const unsigned char *p = (const unsigned char *)c->in.p;
    size_t avail = c->in.len, pos = 0;
    while (c->status == RUNNING && avail - pos >= 2) {
        const unsigned char *f = p + pos;
        size_t have = avail - pos;
        int fin = f[0] & 0x80, op = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t hdr = 2;
        if (f[0] & 0x70) {
            end_conn(e, c, ST_ERROR, 0, "reserved bits set");
            break;
        }
        if (f[1] & 0x80) {
            end_conn(e, c, ST_ERROR, 0, "masked frame from the server");
            break;
        }
        if (len == 126) {
            if (have < 4) {
                break;
            }
            len = ((uint64_t)f[2] << 8) | f[3];
            hdr = 4;
        }
        else if (len == 127) {
            if (have < 10) {
                break;
            }
            len = 0;
            for (int i = 0; i < 8; i++) {
                len = (len << 8) | f[2 + i];
            }
            hdr = 10;
        }
        if (len > MAX_FRAME) {
            end_conn(e, c, ST_ERROR, 0, "frame too large");
            break;
        }
        if (have < hdr + len) {
            break;
        }
        const char *payload = (const char *)f + hdr;
        if (op >= 8 && (!fin || len > 125)) {
            end_conn(e, c, ST_ERROR, 0, "bad control frame");
            break;
        }
        switch (op) {
        case 0x1:
        case 0x2:
            if (c->in_msg) {
                end_conn(e, c, ST_ERROR, 0, "data frame inside a fragmented message");
                break;
            }
            if (fin) {
                record(e, c, payload, (size_t)len, recv_ns);
            }
            else {
                c->msg.len = 0;
                c->in_msg = 1;
                if (buf_put(&c->msg, payload, (size_t)len) < 0) {
                    end_conn(e, c, ST_ERROR, 0, "out of memory");
                }
            }
            break;
        case 0x0:
            if (!c->in_msg) {
                end_conn(e, c, ST_ERROR, 0, "continuation without a message");
                break;
            }
            if (buf_put(&c->msg, payload, (size_t)len) < 0 || c->msg.len > MAX_FRAME) {
                end_conn(e, c, ST_ERROR, 0, "message too large");
                break;
            }
            if (fin) {
                c->in_msg = 0;
                record(e, c, c->msg.p, c->msg.len, recv_ns);
                c->msg.len = 0;
            }
            break;
        case 0x8:
            if (len == 1) {
                end_conn(e, c, ST_ERROR, 0, "close frame of one byte");
            }
            else {
                int code = len ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1]
                               : 1005;
                end_conn(e, c, ST_CLOSED, code, NULL);
            }
            break;
        case 0x9:
            send_pong(e, c, (const unsigned char *)payload, (size_t)len);
            break;
        case 0xA:
            break;
        default:
            end_conn(e, c, ST_ERROR, 0, "reserved opcode");
        }
        pos += hdr + (size_t)len;
    }
    return pos;
}

/* --- SSE ------------------------------------------------------------------------------------ */

static int
is_field(const char *name, size_t n, const char *want)
{
    size_t m = strlen(want);
    return n == m && memcmp(name, want, m) == 0;
}

static void
sse_line(Engine *e, Conn *c, const char *p, size_t n, int64_t recv_ns)
{
    if (n == 0) { /* dispatch */
        if (c->last_id.len != c->idbuf.len ||
            (c->idbuf.len && memcmp(c->last_id.p, c->idbuf.p, c->idbuf.len) != 0)) {
            c->last_id.len = 0;
            buf_put(&c->last_id, c->idbuf.p, c->idbuf.len);
            c->id_changed = 1;
            c->dirty = 1;
            e->dirty = 1;
        }
        if (c->ndata) {
            record(e, c, c->data.p, c->data.len - 1, recv_ns);
            c->ndata = 0;
            c->data.len = 0;
        }
        return;
    }
    const char *colon = memchr(p, ':', n);
    size_t nl = colon ? (size_t)(colon - p) : n;
    const char *v = colon ? colon + 1 : p + n;
    size_t vl = colon ? n - nl - 1 : 0;
    if (vl && *v == ' ') {
        v++;
        vl--;
    }
    if (is_field(p, nl, "data")) {
        buf_put(&c->data, v, vl);
        buf_put(&c->data, "\n", 1);
        c->ndata++;
    }
    else if (is_field(p, nl, "id")) {
        if (memchr(v, 0, vl) == NULL) {
            c->idbuf.len = 0;
            buf_put(&c->idbuf, v, vl);
        }
    }
    else if (nl == 0) {
        c->comments++;
    }
    else if (is_field(p, nl, "retry") && vl) {
        int64_t ms = 0;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return;
            }
            ms = ms > INT64_MAX / 10 - 10 ? INT64_MAX / 2 : ms * 10 + (v[i] - '0');
        }
        c->retry_ms = ms;
        c->dirty = 1;
    }
}

static void sse_bytes(Engine *e, Conn *c, const char *p, size_t n, int64_t recv_ns);

static void
sse_lines(Engine *e, Conn *c, const char *p, size_t n, int64_t recv_ns)
{
    size_t i = 0;
    if (c->cr && n) {
        c->cr = 0;
        if (p[0] == '\n') {
            i = 1;
        }
    }
    while (i < n && c->status == RUNNING) {
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r') {
            j++;
        }
        if (j == n) {
            buf_put(&c->line, p + i, n - i);
            return;
        }
        if (c->line.len) {
            buf_put(&c->line, p + i, j - i);
            sse_line(e, c, c->line.p, c->line.len, recv_ns);
            c->line.len = 0;
        }
        else {
            sse_line(e, c, p + i, j - i, recv_ns);
        }
        if (p[j] == '\r') {
            if (j + 1 < n) {
                i = j + 1 + (p[j + 1] == '\n');
            }
            else {
                c->cr = 1;
                i = j + 1;
            }
        }
        else {
            i = j + 1;
        }
    }
}

/* Body bytes of the event stream: a leading byte order mark is dropped. */
static void
sse_bytes(Engine *e, Conn *c, const char *p, size_t n, int64_t recv_ns)
{
    static const char bom[3] = {'\xef', '\xbb', '\xbf'};
    if (c->start) {
        /* the BOM's bytes so far wait in line (empty at the start of a stream) */
        while (n && c->line.len < 3 && *p == bom[c->line.len]) {
            buf_put(&c->line, p, 1);
            p++;
            n--;
        }
        if (c->line.len < 3 && n == 0) {
            return; /* maybe a BOM, split across reads */
        }
        c->start = 0;
        if (c->line.len == 3) {
            c->line.len = 0;
        }
        else if (c->line.len) { /* a prefix of one that was not: ordinary bytes */
            char held[3];
            size_t k = c->line.len;
            memcpy(held, c->line.p, k);
            c->line.len = 0;
            sse_lines(e, c, held, k, recv_ns);
        }
    }
    sse_lines(e, c, p, n, recv_ns);
}

static void
sse_end_stream(Engine *e, Conn *c, int status, const char *error)
{
    end_conn(e, c, status, 0, error);
}

/* Decode the body framing of c->in; returns the bytes consumed. */
static size_t
sse_parse(Engine *e, Conn *c, int64_t recv_ns)
{
    const char *p = c->in.p;
    size_t avail = c->in.len, pos = 0;
    if (c->framing == F_CLOSE) {
        sse_bytes(e, c, p, avail, recv_ns);
        return avail;
    }
    if (c->framing == F_LENGTH) {
        size_t take = (int64_t)avail < c->left ? avail : (size_t)c->left;
        sse_bytes(e, c, p, take, recv_ns);
        c->left -= (int64_t)take;
        if (c->left == 0) {
            sse_end_stream(e, c, ST_DONE, NULL);
        }
        return avail;
    }
    while (c->status == RUNNING && pos < avail) {
        if (c->chunk == C_DATA) {
            size_t take = (int64_t)(avail - pos) < c->left ? avail - pos : (size_t)c->left;
            sse_bytes(e, c, p + pos, take, recv_ns);
            pos += take;
            c->left -= (int64_t)take;
            if (c->left == 0) {
                c->chunk = C_DATA_END;
            }
            continue;
        }
        const char *nl = NULL;
        for (const char *q = p + pos; q + 1 < p + avail; q++) {
            q = memchr(q, '\r', (size_t)(p + avail - q - 1));
            if (q == NULL) {
                break;
            }
            if (q[1] == '\n') {
                nl = q;
                break;
            }
        }
        if (nl == NULL) {
            if (avail - pos > 4096) {
                sse_end_stream(e, c, ST_ERROR, "BadResponse: chunk line too long");
            }
            break;
        }
        const char *line = p + pos;
        size_t ll = (size_t)(nl - line);
        pos += ll + 2;
        if (c->chunk == C_SIZE) {
            size_t k = 0, end = ll;
            const char *semi = memchr(line, ';', ll);
            if (semi) {
                end = (size_t)(semi - line);
            }
            while (k < end && (line[k] == ' ' || line[k] == '\t')) {
                k++;
            }
            while (end > k && (line[end - 1] == ' ' || line[end - 1] == '\t')) {
                end--;
            }
            int64_t size = 0;
            if (end == k || end - k > 15) {
                sse_end_stream(e, c, ST_ERROR, "BadResponse: bad chunk size");
                break;
            }
            for (; k < end; k++) {
                char ch = line[k];
                int d = ch >= '0' && ch <= '9'   ? ch - '0'
                        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                 : -1;
                if (d < 0) {
                    sse_end_stream(e, c, ST_ERROR, "BadResponse: bad chunk size");
                    break;
                }
                size = size * 16 + d;
            }
            if (c->status != RUNNING) {
                break;
            }
            c->left = size;
            c->chunk = size ? C_DATA : C_TRAILER;
        }
        else if (c->chunk == C_DATA_END) {
            if (ll) {
                sse_end_stream(e, c, ST_ERROR, "BadResponse: chunk data longer than its size");
                break;
            }
            c->chunk = C_SIZE;
        }
        else if (ll == 0) { /* the end of the trailer section: the stream is over */
            sse_end_stream(e, c, ST_DONE, NULL);
        }
    }
    return pos;
}

/* --- reading ---------------------------------------------------------------------------------- */

static void
parse_in(Engine *e, Conn *c, int64_t recv_ns)
{
    size_t used = c->kind == K_WS ? ws_parse(e, c, recv_ns) : sse_parse(e, c, recv_ns);
    if (used >= c->in.len) {
        c->in.len = 0;
    }
    else if (used) {
        memmove(c->in.p, c->in.p + used, c->in.len - used);
        c->in.len -= used;
    }
}

static void
on_readable(Engine *e, Conn *c)
{
    ssize_t got = recv(c->fd, e->rbuf, READ_SIZE, MSG_DONTWAIT);
    int64_t t = now_ns(); /* first: the arrival time of every message in this read */
    if (got > 0) {
        c->received += got;
        if (c->in.len == 0 && c->kind == K_SSE && c->framing == F_CLOSE) {
            sse_bytes(e, c, e->rbuf, (size_t)got, t); /* no copy: nothing is held back */
            return;
        }
        if (buf_put(&c->in, e->rbuf, (size_t)got) < 0) {
            end_conn(e, c, ST_ERROR, 0, "out of memory");
            return;
        }
        parse_in(e, c, t);
        return;
    }
    if (got == 0) {
        if (c->kind == K_WS) {
            end_conn(e, c, ST_EOF, 0, NULL);
        }
        else if (c->framing == F_CLOSE) {
            end_conn(e, c, ST_DONE, 0, NULL); /* an until-close stream ends here */
        }
        else {
            end_conn(e, c, ST_ERROR, 0,
                     "BadResponse: connection closed before the response was complete");
        }
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    }
    char text[128];
    snprintf(text, sizeof text, "errno %d", errno);
    end_conn(e, c, ST_ERROR, errno, text);
}

/* --- the Python type --------------------------------------------------------------------------- */

static Conn *
lookup(Engine *e, Py_ssize_t id)
{
    if (id < 0 || id >= e->ntable || e->table[id] == NULL) {
        PyErr_SetString(PyExc_KeyError, "no such connection");
        return NULL;
    }
    return e->table[id];
}

static int
Engine_init(Engine *e, PyObject *args, PyObject *kw)
{
    PyObject *arrays[5];
    Py_ssize_t n, overflow;
    if (!PyArg_ParseTuple(args, "OOOOOnn", &arrays[0], &arrays[1], &arrays[2], &arrays[3],
                          &arrays[4], &n, &overflow)) {
        return -1;
    }
    if (e->have_views) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    if (receipts_open(&e->rows, arrays) < 0) {
        return -1;
    }
    e->n = n;
    e->overflow = overflow;
    e->have_views = 1;
    e->tfd = -1;
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->rbuf = malloc(READ_SIZE);
    e->mask_state = (uint32_t)now_ns() | 1u;
    pthread_mutex_init(&e->mu, NULL);
    if (e->ep < 0 || e->evfd < 0 || e->rbuf == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->evfd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void
free_slow(Engine *e)
{
    for (Slow *s = e->slow_head; s;) {
        Slow *next = s->next;
        free(s);
        s = next;
    }
    e->slow_head = e->slow_tail = NULL;
}

static PyObject *
Engine_close(Engine *e, PyObject *unused)
{
    if (e->running) {
        PyErr_SetString(PyExc_RuntimeError, "the loop is running");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < e->ntable; i++) {
        if (e->table[i]) {
            conn_free(e->table[i]);
            e->table[i] = NULL;
        }
    }
    for (Conn *z = e->zombies; z;) {
        Conn *next = z->zombie_next;
        conn_free(z);
        z = next;
    }
    e->zombies = NULL;
    free_slow(e);
    if (e->have_views) {
        receipts_close(&e->rows);
        e->have_views = 0;
        close(e->ep);
        close(e->evfd);
        if (e->tfd >= 0) {
            close(e->tfd);
        }
        e->ep = e->evfd = e->tfd = -1;
    }
    Py_RETURN_NONE;
}

static void
Engine_dealloc(Engine *e)
{
    if (!e->running) {
        PyObject *r = Engine_close(e, NULL);
        Py_XDECREF(r);
    }
    free(e->table);
    free(e->rbuf);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *
Engine_add(Engine *e, PyObject *args)
{
    int fd, kind, framing;
    unsigned long conn;
    Py_buffer left, last_id;
    long long recv_ns, body_left;
    if (!PyArg_ParseTuple(args, "ikiy*LiLy*", &fd, &conn, &kind, &left, &recv_ns, &framing,
                          &body_left, &last_id)) {
        return NULL;
    }
    PyObject *result = NULL;
    Conn *c = calloc(1, sizeof(Conn));
    if (!e->have_views || c == NULL || conn > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "engine closed, or a connection id beyond uint32");
        free(c);
        goto out;
    }
    c->fd = fd;
    c->conn = (uint32_t)conn;
    c->kind = kind;
    c->framing = framing;
    c->left = body_left;
    c->start = 1;
    c->last_seq = -1;
    c->retry_ms = -1;
    buf_put(&c->idbuf, last_id.buf, (size_t)last_id.len);
    buf_put(&c->last_id, last_id.buf, (size_t)last_id.len);
    lock(e);
    Py_ssize_t id = 0;
    while (id < e->ntable && e->table[id] != NULL) {
        id++;
    }
    if (id == e->ntable) {
        Py_ssize_t size = e->ntable ? e->ntable * 2 : 64;
        Conn **t = realloc(e->table, (size_t)size * sizeof(Conn *));
        if (t == NULL) {
            unlock(e);
            conn_free(c);
            PyErr_NoMemory();
            goto out;
        }
        memset(t + e->ntable, 0, (size_t)(size - e->ntable) * sizeof(Conn *));
        e->table = t;
        e->ntable = size;
    }
    c->id = id;
    e->table[id] = c;
    if (kind == K_SSE && framing == F_LENGTH && body_left == 0) {
        end_conn(e, c, ST_DONE, 0, NULL);
    }
    if (left.len) {
        buf_put(&c->in, left.buf, (size_t)left.len);
        parse_in(e, c, recv_ns);
    }
    if (c->status == RUNNING) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            end_conn(e, c, ST_ERROR, errno, "epoll_ctl failed");
        }
        else {
            c->in_epoll = 1;
        }
    }
    if (e->pending_end || e->dirty) {
        uint64_t one = 1;
        (void)write(e->evfd, &one, 8);
    }
    unlock(e);
    result = PyLong_FromSsize_t(id);
out:
    PyBuffer_Release(&left);
    PyBuffer_Release(&last_id);
    return result;
}

static PyObject *
Engine_remove(Engine *e, PyObject *arg)
{
    Py_ssize_t id = PyLong_AsSsize_t(arg);
    if (id == -1 && PyErr_Occurred()) {
        return NULL;
    }
    lock(e);
    Conn *c = lookup(e, id);
    if (c != NULL) {
        end_conn(e, c, ST_REMOVED, 0, NULL);
    }
    unlock(e);
    if (c == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Engine_release(Engine *e, PyObject *arg)
{
    Py_ssize_t id = PyLong_AsSsize_t(arg);
    if (id == -1 && PyErr_Occurred()) {
        return NULL;
    }
    lock(e);
    Conn *c = lookup(e, id);
    if (c != NULL) {
        end_conn(e, c, ST_REMOVED, 0, NULL);
        e->table[id] = NULL;
        if (e->running) { /* an event of it may be in the loop's hands: freed there */
            c->zombie_next = e->zombies;
            e->zombies = c;
        }
        else {
            conn_free(c);
        }
    }
    unlock(e);
    if (c == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Engine_info(Engine *e, PyObject *arg)
{
    Py_ssize_t id = PyLong_AsSsize_t(arg);
    if (id == -1 && PyErr_Occurred()) {
        return NULL;
    }
    lock(e);
    Conn *c = lookup(e, id);
    PyObject *r = NULL;
    if (c != NULL) {
        r = Py_BuildValue("(iiisLLy#LL)", c->status != RUNNING, c->status, c->code, c->error,
                          (long long)c->messages, (long long)c->last_seq,
                          c->last_id.p ? c->last_id.p : "",
                          (Py_ssize_t)c->last_id.len, (long long)c->retry_ms,
                          (long long)c->received);
    }
    unlock(e);
    return r;
}

static PyObject *
Engine_take(Engine *e, PyObject *unused)
{
    lock(e);
    PyObject *updates = PyList_New(0), *slow = PyList_New(0), *ended = PyList_New(0);
    PyObject *r = NULL;
    if (updates == NULL || slow == NULL || ended == NULL) {
        goto out;
    }
    for (Py_ssize_t i = 0; i < e->ntable; i++) {
        Conn *c = e->table[i];
        if (c == NULL) {
            continue;
        }
        if (c->dirty) {
            PyObject *id = Py_None;
            Py_INCREF(id);
            if (c->id_changed) {
                Py_DECREF(id);
                id = PyBytes_FromStringAndSize(c->last_id.p, (Py_ssize_t)c->last_id.len);
                if (id == NULL) {
                    goto out;
                }
            }
            PyObject *t = Py_BuildValue("(nLLNL)", c->id, (long long)c->messages,
                                        (long long)c->last_seq, id, (long long)c->retry_ms);
            if (t == NULL || PyList_Append(updates, t) < 0) {
                Py_XDECREF(t);
                goto out;
            }
            Py_DECREF(t);
            c->dirty = 0;
            c->id_changed = 0;
        }
        if (c->status != RUNNING && !c->ended_reported) {
            PyObject *t = PyLong_FromSsize_t(c->id);
            if (t == NULL || PyList_Append(ended, t) < 0) {
                Py_XDECREF(t);
                goto out;
            }
            Py_DECREF(t);
            c->ended_reported = 1;
        }
    }
    for (Slow *s = e->slow_head; s; s = s->next) {
        PyObject *t = Py_BuildValue("(nky#L)", s->id, (unsigned long)s->conn, s->data,
                                    (Py_ssize_t)s->len, (long long)s->recv_ns);
        if (t == NULL || PyList_Append(slow, t) < 0) {
            Py_XDECREF(t);
            goto out;
        }
        Py_DECREF(t);
    }
    free_slow(e);
    e->pending_end = 0;
    e->dirty = 0;
    r = Py_BuildValue("(nnOOO)", e->n, e->overflow, updates, slow, ended);
out:
    unlock(e);
    Py_XDECREF(updates);
    Py_XDECREF(slow);
    Py_XDECREF(ended);
    return r;
}

static PyObject *
Engine_set_counts(Engine *e, PyObject *args)
{
    Py_ssize_t n, overflow;
    if (!PyArg_ParseTuple(args, "nn", &n, &overflow)) {
        return NULL;
    }
    lock(e);
    e->n = n < e->rows.capacity ? n : e->rows.capacity;
    e->overflow = overflow;
    unlock(e);
    Py_RETURN_NONE;
}

static int
lag_arm(Engine *e, int64_t due)
{
    struct itimerspec spec = {{0, 0}, {due / 1000000000, due % 1000000000}};
    e->lag_due = due;
    return timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &spec, NULL);
}

/* The probe's timerfd was readable (mu held): how late, into the histogram; re-arm. */
static void
lag_fired(Engine *e)
{
    uint64_t v;
    if (read(e->tfd, &v, 8) != 8) {
        return; /* a stale readiness */
    }
    int64_t t = now_ns();
    if (e->lag_discard) {
        e->lag_discard = 0;
    }
    else {
        int64_t lag = t > e->lag_due ? t - e->lag_due : 0;
        size_t b = 0;
        while (b < LAG_BUCKETS - 1 && lag >= LAG_EDGES_US[b] * 1000) {
            b++;
        }
        e->lag_counts[b]++;
        e->lag_samples++;
        e->lag_sum += lag;
        if (lag > e->lag_max) {
            e->lag_max = lag;
            e->lag_max_at = t;
        }
    }
    (void)lag_arm(e, t + e->lag_interval);
}

static PyObject *
Engine_probe(Engine *e, PyObject *arg)
{
    long long interval = PyLong_AsLongLong(arg);
    if (interval == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (interval <= 0) {
        PyErr_SetString(PyExc_ValueError, "interval_ns must be > 0");
        return NULL;
    }
    lock(e);
    PyObject *r = NULL;
    if (!e->have_views) {
        PyErr_SetString(PyExc_RuntimeError, "engine closed");
        goto done;
    }
    if (e->tfd < 0) {
        e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &LAG_TAG};
        if (e->tfd < 0 || epoll_ctl(e->ep, EPOLL_CTL_ADD, e->tfd, &ev) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
    }
    e->lag_interval = interval;
    if (lag_arm(e, now_ns() + interval) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    r = Py_NewRef(Py_None);
done:
    unlock(e);
    return r;
}

static PyObject *
Engine_lag(Engine *e, PyObject *reset)
{
    int forget = PyObject_IsTrue(reset);
    if (forget < 0) {
        return NULL;
    }
    lock(e);
    PyObject *counts = PyTuple_New(LAG_BUCKETS);
    PyObject *r = NULL;
    if (counts != NULL) {
        for (size_t b = 0; b < LAG_BUCKETS; b++) {
            PyTuple_SET_ITEM(counts, b, PyLong_FromLongLong(e->lag_counts[b]));
        }
        r = Py_BuildValue("(LLLLN)", (long long)e->lag_max, (long long)e->lag_max_at,
                          (long long)e->lag_sum, (long long)e->lag_samples, counts);
    }
    if (r != NULL && forget) {
        e->lag_max = e->lag_max_at = e->lag_sum = e->lag_samples = 0;
        memset(e->lag_counts, 0, sizeof(e->lag_counts));
        e->lag_discard = e->tfd >= 0;
    }
    unlock(e);
    return r;
}

static PyObject *
Engine_stop(Engine *e, PyObject *unused)
{
    lock(e);
    e->stop = 1;
    if (e->evfd >= 0) {
        uint64_t one = 1;
        (void)write(e->evfd, &one, 8);
    }
    unlock(e);
    Py_RETURN_NONE;
}

static PyObject *
Engine_run(Engine *e, PyObject *callback)
{
    if (!e->have_views || e->running) {
        PyErr_SetString(PyExc_RuntimeError, "engine closed or already running");
        return NULL;
    }
    e->running = 1;
    struct epoll_event evs[MAX_EVENTS];
    int64_t last_sync = now_ns();
    int failed = 0;
    while (!failed) {
        int stop;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&e->mu);
        for (;;) {
            for (Conn *z = e->zombies; z;) { /* no event of theirs is pending now */
                Conn *next = z->zombie_next;
                conn_free(z);
                z = next;
            }
            e->zombies = NULL;
            int64_t t = now_ns();
            if (e->stop || e->pending_end || (e->dirty && t - last_sync >= SYNC_NS)) {
                break;
            }
            int timeout = e->dirty ? (int)((SYNC_NS - (t - last_sync)) / 1000000 + 1) : -1;
            pthread_mutex_unlock(&e->mu);
            int got = epoll_wait(e->ep, evs, MAX_EVENTS, timeout);
            pthread_mutex_lock(&e->mu);
            for (int i = 0; i < got; i++) {
                Conn *c = evs[i].data.ptr;
                if (c == NULL) {
                    uint64_t v;
                    (void)read(e->evfd, &v, 8);
                }
                else if ((void *)c == (void *)&LAG_TAG) {
                    lag_fired(e);
                }
                else if (c->status == RUNNING) {
                    on_readable(e, c);
                }
            }
        }
        stop = e->stop;
        e->stop = 0;
        pthread_mutex_unlock(&e->mu);
        Py_END_ALLOW_THREADS
        last_sync = now_ns();
        PyObject *r = PyObject_CallNoArgs(callback);
        if (r == NULL) {
            failed = 1;
        }
        Py_XDECREF(r);
        if (stop) {
            break;
        }
    }
    lock(e);
    e->running = 0;
    unlock(e);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Engine_counts(Engine *e, PyObject *unused)
{
    lock(e);
    PyObject *r = Py_BuildValue("(nn)", e->n, e->overflow);
    unlock(e);
    return r;
}

static PyMethodDef Engine_methods[] = {
    {"add", (PyCFunction)Engine_add, METH_VARARGS,
     "add(fd, conn, kind, leftover, recv_ns, framing, left, last_id) -> id"},
    {"remove", (PyCFunction)Engine_remove, METH_O, "remove(id): stop reading it"},
    {"release", (PyCFunction)Engine_release, METH_O, "release(id): forget it"},
    {"info", (PyCFunction)Engine_info, METH_O,
     "info(id) -> (ended, status, code, error, messages, last_seq, last_id, retry_ms, "
     "received)"},
    {"take", (PyCFunction)Engine_take, METH_NOARGS,
     "take() -> (n, overflow, updates, slow, ended)"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS, "counts() -> (n, overflow)"},
    {"set_counts", (PyCFunction)Engine_set_counts, METH_VARARGS, "set_counts(n, overflow)"},
    {"run", (PyCFunction)Engine_run, METH_O, "run(callback): the loop, until stop()"},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "stop(): end run()"},
    {"probe", (PyCFunction)Engine_probe, METH_O, "probe(interval_ns): the loop's lag probe"},
    {"lag", (PyCFunction)Engine_lag, METH_O,
     "lag(reset) -> (max_ns, max_at_ns, sum_ns, samples, counts)"},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "close(): release arrays and fds"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pushbench.clients._rxloop.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_doc = "One epoll receive loop over a worker's subscriber sockets.",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pushbench.clients._rxloop", NULL, -1, NULL,
};

PyMODINIT_FUNC
PyInit__rxloop(void)
{
    if (PyType_Ready(&EngineType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "RUNNING", RUNNING);
    PyModule_AddIntConstant(m, "CLOSED", ST_CLOSED);
    PyModule_AddIntConstant(m, "EOF", ST_EOF);
    PyModule_AddIntConstant(m, "ERROR", ST_ERROR);
    PyModule_AddIntConstant(m, "REMOVED", ST_REMOVED);
    PyModule_AddIntConstant(m, "DONE", ST_DONE);
    return m;
}
