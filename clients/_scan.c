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

static int
get_array(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (view->itemsize != itemsize) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "receipt array of the wrong item size");
        return -1;
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
    unsigned long long conn = PyLong_AsUnsignedLongLong(args[2]);
    long long recv_ns = PyLong_AsLongLong(args[3]);
    Py_ssize_t n = PyLong_AsSsize_t(args[9]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (conn > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "connection id beyond uint32");
        return NULL;
    }
    Py_buffer views[5];
    const Py_ssize_t sizes[5] = {8, 8, 8, 8, 4};
    int got = 0;
    for (; got < 5; got++) {
        if (get_array(args[4 + got], &views[got], sizes[got]) < 0) {
            goto error;
        }
    }
    Py_ssize_t capacity = views[0].len / 8;
    for (int a = 1; a < 5; a++) {
        if (views[a].len / sizes[a] < capacity) {
            capacity = views[a].len / sizes[a];
        }
    }
    int64_t *seqs = views[0].buf, *schs = views[1].buf, *pubs = views[2].buf;
    int64_t *recvs = views[3].buf;
    uint32_t *conns = views[4].buf;
    int64_t last = INT64_MIN;
    Py_ssize_t count = 0;
    Py_ssize_t i = start < 0 ? 0 : start;
    const Py_ssize_t total = PyList_GET_SIZE(payloads);
    for (; i < total; i++) {
        PyObject *item = PyList_GET_ITEM(payloads, i);
        const char *d;
        Py_ssize_t len;
        if (PyBytes_CheckExact(item)) {
            d = PyBytes_AS_STRING(item);
            len = PyBytes_GET_SIZE(item);
        }
        else if (PyByteArray_CheckExact(item)) {
            d = PyByteArray_AS_STRING(item);
            len = PyByteArray_GET_SIZE(item);
        }
        else {
            break;
        }
        int64_t seq, sch, pub;
        if (!parse_envelope(d, len, &seq, &sch, &pub)) {
            break;
        }
        if (n < capacity) {
            seqs[n] = seq;
            schs[n] = sch;
            pubs[n] = pub;
            recvs[n] = (int64_t)recv_ns;
            conns[n] = (uint32_t)conn;
            n++;
        }
        if (seq > last) {
            last = seq;
        }
        count++;
    }
    for (int a = 0; a < 5; a++) {
        PyBuffer_Release(&views[a]);
    }
    if (count == 0) {
        last = -1;
    }
    return Py_BuildValue("(nnLn)", i, n, (long long)last, count);

error:
    for (int a = 0; a < got; a++) {
        PyBuffer_Release(&views[a]);
    }
    return NULL;
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
    PyObject *body = args[0];
    const char *d;
    Py_ssize_t len;
    if (PyBytes_CheckExact(body)) {
        d = PyBytes_AS_STRING(body);
        len = PyBytes_GET_SIZE(body);
    }
    else if (PyByteArray_CheckExact(body)) {
        d = PyByteArray_AS_STRING(body);
        len = PyByteArray_GET_SIZE(body);
    }
    else {
        Py_RETURN_NONE;
    }
    unsigned long long conn = PyLong_AsUnsignedLongLong(args[1]);
    long long recv_ns = PyLong_AsLongLong(args[2]);
    Py_ssize_t n = PyLong_AsSsize_t(args[8]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (conn > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "connection id beyond uint32");
        return NULL;
    }
    Py_buffer views[5];
    const Py_ssize_t sizes[5] = {8, 8, 8, 8, 4};
    int got = 0;
    for (; got < 5; got++) {
        if (get_array(args[3 + got], &views[got], sizes[got]) < 0) {
            goto error;
        }
    }
    Py_ssize_t capacity = views[0].len / 8;
    for (int a = 1; a < 5; a++) {
        if (views[a].len / sizes[a] < capacity) {
            capacity = views[a].len / sizes[a];
        }
    }
    int64_t *seqs = views[0].buf, *schs = views[1].buf, *pubs = views[2].buf;
    int64_t *recvs = views[3].buf;
    uint32_t *conns = views[4].buf;
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
        if (pos + 6 > len || memcmp(d + pos, "{\"t\":\"", 6) != 0) {
            goto done;
        }
        Py_ssize_t i = index_of(d, len, pos + 6, "\"s\":", 4);
        if (i < 0) {
            goto done;
        }
        Py_ssize_t j = index_of(d, len, i, ",\"sch\":", 7);
        if (j < 0) {
            goto done;
        }
        Py_ssize_t k = index_of(d, len, j, ",\"pub\":", 7);
        if (k < 0) {
            goto done;
        }
        Py_ssize_t m = index_of(d, len, k, ",\"p\":\"", 6);
        if (m < 0) {
            goto done;
        }
        int64_t seq, sch, pub;
        if (!parse_int(d + i + 4, d + j, &seq) || !parse_int(d + j + 7, d + k, &sch)
            || !parse_int(d + k + 7, d + m, &pub)) {
            goto done;
        }
        Py_ssize_t end = string_end(d, len, m + 6);
        if (end < 0 || d[end + 1] != '}') {
            goto done;
        }
        if (n < capacity) {
            seqs[n] = seq;
            schs[n] = sch;
            pubs[n] = pub;
            recvs[n] = (int64_t)recv_ns;
            conns[n] = (uint32_t)conn;
            n++;
        }
        count++;
        pos = end + 2;
        if (pos >= len) {
            goto done;
        }
        if (d[pos] == ',') {
            pos++;
        }
        else if (d[pos] == ']' && pos + 2 == len && d[pos + 1] == '}') {
            ok = 1;
            goto done;
        }
        else {
            goto done;
        }
    }

done:
    for (int a = 0; a < 5; a++) {
        PyBuffer_Release(&views[a]);
    }
    if (!ok) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Lnn)", (long long)last, count, n);

error:
    for (int a = 0; a < got; a++) {
        PyBuffer_Release(&views[a]);
    }
    return NULL;
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
