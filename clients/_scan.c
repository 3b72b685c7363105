/* C speedup of the clients' receive path: envelopes → receipt rows, a list at a time.
 *
 * Optional: pushbench.clients.recorder records one message at a time in Python
 * when this module did not build, or when the codec's C helpers are switched
 * off (PUSHBENCH_NO_SPEEDUPS=1).
 *
 * scan_envelopes(payloads, start, conn, recv_ns, seq, sch, pub, recv, conns, n)
 *     -> (index, n, last_seq, count)
 *
 * Reads payloads[start:], each an envelope in the fixed encoding the recorder's
 * fast path reads ({"t":"…","s":N,"sch":N,"pub":N,"p":…}, keys in this order),
 * and writes row n, n + 1, … of the five receipt arrays (int64 seq, sch, pub,
 * recv; uint32 conns) until they are full (the rows not written are the
 * caller's overflow: count - rows written). It stops at the first payload it
 * does not recognise (a number that is not plain decimal, a value beyond int64,
 * anything else), returning its index, so the caller reads that one the slow
 * way and calls again: every row is the one the pure path would have written.
 * last_seq is the largest sequence number scanned, count the payloads scanned.
 *
 * scan_poll_answer(body, conn, recv_ns, seq, sch, pub, recv, conns, n)
 *     -> (last, count, n) | None
 *
 * Reads a whole poll answer {"last":N,"messages":[envelope,…]} in the encoding the
 * recorder's pure scan (Recorder._scan_batch) reads, with the same searches in the
 * same order, and writes its envelopes' rows from row n on. None when anything
 * differs from that encoding, a number is not plain decimal or beyond int64
 * included: the rows it wrote past n are then the caller's to forget, and the pure
 * scan (then json) reads the body, so the rows kept are always the pure path's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_envelope.h"
#include "_receipts.h"


/* conn, recv_ns and the first free row n, as every scanner takes them; -1: an exception. */
static int
row_arguments(PyObject *conn_obj, PyObject *recv_obj, PyObject *n_obj,
              unsigned long long *conn, long long *recv_ns, Py_ssize_t *n)
{
    *conn = PyLong_AsUnsignedLongLong(conn_obj);
    *recv_ns = PyLong_AsLongLong(recv_obj);
    *n = PyLong_AsSsize_t(n_obj);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (*conn > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "connection id beyond uint32");
        return -1;
    }
    return 0;
}

/* A bytes or bytearray object's contents; 0 for any other type. */
static int
bytes_of(PyObject *obj, const char **d, Py_ssize_t *len)
{
    if (PyBytes_CheckExact(obj)) {
        *d = PyBytes_AS_STRING(obj);
        *len = PyBytes_GET_SIZE(obj);
        return 1;
    }
    if (PyByteArray_CheckExact(obj)) {
        *d = PyByteArray_AS_STRING(obj);
        *len = PyByteArray_GET_SIZE(obj);
        return 1;
    }
    return 0;
}

static PyObject *
scan_envelopes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "scan_envelopes takes 10 arguments");
        return NULL;
    }
    PyObject *payloads = args[0];
    if (!PyList_Check(payloads)) {
        PyErr_SetString(PyExc_TypeError, "payloads must be a list");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    unsigned long long conn;
    long long recv_ns;
    Py_ssize_t n;
    Receipts r;
    if ((start == -1 && PyErr_Occurred())
        || row_arguments(args[2], args[3], args[9], &conn, &recv_ns, &n) < 0
        || receipts_open(&r, args + 4) < 0) {
        return NULL;
    }
    int64_t last = INT64_MIN;
    Py_ssize_t count = 0;
    Py_ssize_t i = start < 0 ? 0 : start;
    const Py_ssize_t total = PyList_GET_SIZE(payloads);
    for (; i < total; i++) {
        const char *d;
        Py_ssize_t len;
        int64_t seq, sch, pub;
        if (!bytes_of(PyList_GET_ITEM(payloads, i), &d, &len)
            || !parse_envelope(d, len, &seq, &sch, &pub)) {
            break;
        }
        receipts_add(&r, &n, seq, sch, pub, recv_ns, conn);
        if (seq > last) {
            last = seq;
        }
        count++;
    }
    receipts_close(&r);
    if (count == 0) {
        last = -1;
    }
    return Py_BuildValue("(nnLn)", i, n, (long long)last, count);
}

/* Index of the quote closing a JSON string that starts at d[start] (after its opening
 * quote) and is the last member of its object: the first '"}' not escaped by an odd
 * run of backslashes (Recorder's _string_end); -1 when there is none. */
static Py_ssize_t
string_end(const char *d, Py_ssize_t len, Py_ssize_t start)
{
    Py_ssize_t from = start;
    for (;;) {
        const char *q = find(d + from, len - from, "\"}", 2);
        if (q == NULL) {
            return -1;
        }
        Py_ssize_t end = q - d;
        Py_ssize_t b = end - 1;
        while (b >= start && d[b] == '\\') {
            b--;
        }
        if ((end - 1 - b) % 2 == 0) {
            return end;
        }
        from = end + 1;
    }
}

/* The offset of needle in d[from:len], as bytes.index would find it; -1: absent. */
static Py_ssize_t
index_of(const char *d, Py_ssize_t len, Py_ssize_t from, const char *needle, Py_ssize_t m)
{
    if (from > len) {
        return -1;
    }
    const char *p = find(d + from, len - from, needle, m);
    return p == NULL ? -1 : p - d;
}

static PyObject *
scan_poll_answer(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "scan_poll_answer takes 9 arguments");
        return NULL;
    }
    const char *d;
    Py_ssize_t len;
    if (!bytes_of(args[0], &d, &len)) {
        Py_RETURN_NONE;
    }
    unsigned long long conn;
    long long recv_ns;
    Py_ssize_t n;
    Receipts r;
    if (row_arguments(args[1], args[2], args[8], &conn, &recv_ns, &n) < 0
        || receipts_open(&r, args + 3) < 0) {
        return NULL;
    }
    int ok = 0;
    int64_t last = 0;
    Py_ssize_t count = 0;
    Py_ssize_t c;
    if (len < 8 || memcmp(d, "{\"last\":", 8) != 0) {
        goto done;
    }
    c = index_of(d, len, 8, ",\"messages\":[", 13);
    if (c < 0 || !parse_int(d + 8, d + c, &last)) {
        goto done;
    }
    Py_ssize_t pos = c + 13;
    if (pos + 2 <= len && d[pos] == ']' && d[pos + 1] == '}') {
        ok = 1; /* what follows "]}" is the pure scan's to ignore, as it does */
        goto done;
    }
    for (;;) {
        /* The pure scan looks for ',"p":"': a first ',"p":' without the quote is
         * refused here (the pure scan then reads the body), never misread. */
        int64_t seq, sch, pub;
        const char *m = envelope_numbers(d + pos, d + len, &seq, &sch, &pub);
        if (m == NULL || m + 5 >= d + len || m[5] != '"') {
            goto done;
        }
        Py_ssize_t end = string_end(d, len, m + 6 - d);
        if (end < 0 || d[end + 1] != '}') {
            goto done;
        }
        receipts_add(&r, &n, seq, sch, pub, recv_ns, conn);
        count++;
        pos = end + 2;
        if (pos < len && d[pos] == ',') {
            pos++;
        }
        else {
            ok = pos + 2 == len && d[pos] == ']' && d[pos + 1] == '}';
            goto done;
        }
    }

done:
    receipts_close(&r);
    if (!ok) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Lnn)", (long long)last, count, n);
}

static PyMethodDef methods[] = {
    {"scan_envelopes", (PyCFunction)(void (*)(void))scan_envelopes, METH_FASTCALL,
     "scan_envelopes(payloads, start, conn, recv_ns, seq, sch, pub, recv, conns, n)"
     " -> (index, n, last_seq, count): envelopes into receipt rows."},
    {"scan_poll_answer", (PyCFunction)(void (*)(void))scan_poll_answer, METH_FASTCALL,
     "scan_poll_answer(body, conn, recv_ns, seq, sch, pub, recv, conns, n)"
     " -> (last, count, n) | None: a poll answer's envelopes into receipt rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pushbench.clients._scan", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
