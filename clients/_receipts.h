/* The receipt arrays both compiled receive helpers (_scan.c, _rxloop.c) write rows into:
 * int64 seq, sch, pub, recv and uint32 conns, the recorder's numpy arrays held through the
 * buffer protocol (Recorder.rows gives them in this order).
 */
#ifndef PUSHBENCH_RECEIPTS_H
#define PUSHBENCH_RECEIPTS_H

#include <Python.h>
#include <stdint.h>

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

/* The five receipt arrays (int64 seq, sch, pub, recv; uint32 conns), held while rows
 * are written; capacity: the rows the shortest of them has. */
typedef struct {
    Py_buffer views[5];
    Py_ssize_t capacity;
    int64_t *seqs, *schs, *pubs, *recvs;
    uint32_t *conns;
} Receipts;

static const Py_ssize_t RECEIPT_SIZES[5] = {8, 8, 8, 8, 4};

/* Hold the arrays arrays[0..4]; -1 (an exception set, nothing held) if one is unfit. */
static int
receipts_open(Receipts *r, PyObject *const *arrays)
{
    for (int got = 0; got < 5; got++) {
        if (get_array(arrays[got], &r->views[got], RECEIPT_SIZES[got]) < 0) {
            while (got-- > 0) {
                PyBuffer_Release(&r->views[got]);
            }
            return -1;
        }
    }
    r->capacity = r->views[0].len / 8;
    for (int a = 1; a < 5; a++) {
        if (r->views[a].len / RECEIPT_SIZES[a] < r->capacity) {
            r->capacity = r->views[a].len / RECEIPT_SIZES[a];
        }
    }
    r->seqs = r->views[0].buf;
    r->schs = r->views[1].buf;
    r->pubs = r->views[2].buf;
    r->recvs = r->views[3].buf;
    r->conns = r->views[4].buf;
    return 0;
}

static void
receipts_close(Receipts *r)
{
    for (int a = 0; a < 5; a++) {
        PyBuffer_Release(&r->views[a]);
    }
}

/* Row *n, if the arrays have room (else the caller's overflow): *n moves on. */
static inline void
receipts_add(Receipts *r, Py_ssize_t *n, int64_t seq, int64_t sch, int64_t pub,
             long long recv_ns, unsigned long long conn)
{
    Py_ssize_t row = *n;
    if (row < r->capacity) {
        r->seqs[row] = seq;
        r->schs[row] = sch;
        r->pubs[row] = pub;
        r->recvs[row] = (int64_t)recv_ns;
        r->conns[row] = (uint32_t)conn;
        *n = row + 1;
    }
}

#endif
