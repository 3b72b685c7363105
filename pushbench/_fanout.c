/* The raw stack's compiled fan-out: one publish written to many sockets in one call.
 *
 * Optional (pushbench.hub.FANOUT is None when it is not built or is switched off). Without it
 * the hub hands each item to each subscriber's Python sink, which frames it, checks
 * the connection and calls transport.write: about ten Python calls per delivery, the
 * larger half of the raw stack's CPU per message on this machine (perf, 50 × 200
 * msg/s). Here the hub collects the descriptors of the subscribers whose transports
 * have nothing buffered and writes the one shared buffer to each with send(), the GIL
 * released; what a socket did not take in full goes back to Python (the transport
 * buffers the rest, in order).
 *
 * send_each(fds: list[int], data: bytes-like) -> list[(index, result)]
 *     result: bytes written when fewer than len(data) (0: nothing, EAGAIN), or -errno.
 *     Only the sockets that did not take everything are listed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/socket.h>

#define ON_STACK 512

static PyObject *
send_each(PyObject *self, PyObject *args)
{
    PyObject *fds;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "O!y*", &PyList_Type, &fds, &data)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(fds);
    int fd_stack[ON_STACK];
    ssize_t res_stack[ON_STACK];
    int *fdv = fd_stack;
    ssize_t *res = res_stack;
    PyObject *out = NULL;
    if (n > ON_STACK) {
        fdv = PyMem_Malloc((size_t)n * sizeof *fdv);
        res = PyMem_Malloc((size_t)n * sizeof *res);
        if (fdv == NULL || res == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long fd = PyLong_AsLong(PyList_GET_ITEM(fds, i));
        if (fd == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (fd < 0 || fd > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "not a file descriptor");
            goto done;
        }
        fdv[i] = (int)fd;
    }
    const char *p = data.buf;
    size_t len = (size_t)data.len;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        ssize_t r;
        do {
            r = send(fdv[i], p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            r = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
        }
        res[i] = r;
    }
    Py_END_ALLOW_THREADS
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (res[i] == (ssize_t)len) {
            continue;
        }
        PyObject *pair = Py_BuildValue("(nn)", i, (Py_ssize_t)res[i]);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(pair);
    }
done:
    if (fdv != fd_stack) {
        PyMem_Free(fdv);
    }
    if (res != res_stack) {
        PyMem_Free(res);
    }
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"send_each", send_each, METH_VARARGS,
     "send_each(fds, data) -> [(index, written or -errno)] for the sockets that did not "
     "take all of data"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fanout", "The raw stack's compiled fan-out.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    return PyModule_Create(&module);
}
