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

static PyMethodDef methods[] = {
    {"scan_envelopes", (PyCFunction)(void (*)(void))scan_envelopes, METH_FASTCALL,
     "scan_envelopes(payloads, start, conn, recv_ns, seq, sch, pub, recv, conns, n)"
     " -> (index, n, last_seq, count): envelopes into receipt rows."},
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
