/* The receiving half of the loopback floor probe (pushbench.netfloor): read until a deadline.
 *
 * drain(fds: list[int], seconds: float) -> (bytes, reads, wakeups)
 *     Registers the sockets with one epoll instance and, until ``seconds`` have passed on
 *     CLOCK_MONOTONIC, waits and reads each ready socket once per wake-up (64 KiB at a time,
 *     level-triggered), the GIL released: the least a client can do per message, so the CPU
 *     it costs is the kernel's (epoll_wait, recv, the ACKs recv sends) and nothing of ours.
 *     A socket that reaches end of stream or fails is dropped from the set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 256
#define CHUNK 65536

static double
monotonic_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static PyObject *
drain(PyObject *self, PyObject *args)
{
    PyObject *fds;
    double seconds;
    if (!PyArg_ParseTuple(args, "O!d", &PyList_Type, &fds, &seconds)) {
        return NULL;
    }
    if (!(seconds >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "seconds must be >= 0");
        return NULL;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_ssize_t n = PyList_GET_SIZE(fds);
    for (Py_ssize_t i = 0; i < n; i++) {
        long fd = PyLong_AsLong(PyList_GET_ITEM(fds, i));
        if (fd == -1 && PyErr_Occurred()) {
            close(ep);
            return NULL;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = (int)fd};
        if (fd < 0 || fd > INT32_MAX || epoll_ctl(ep, EPOLL_CTL_ADD, (int)fd, &ev) < 0) {
            if (fd < 0 || fd > INT32_MAX) {
                PyErr_SetString(PyExc_ValueError, "not a file descriptor");
            } else {
                PyErr_SetFromErrno(PyExc_OSError);
            }
            close(ep);
            return NULL;
        }
    }
    char *buf = PyMem_RawMalloc(CHUNK);
    if (buf == NULL) {
        close(ep);
        return PyErr_NoMemory();
    }
    long long total = 0, reads = 0, wakeups = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    struct epoll_event events[EVENTS];
    double deadline = monotonic_s() + seconds;
    for (;;) {
        double left = deadline - monotonic_s();
        if (left <= 0) {
            break;
        }
        int k = epoll_wait(ep, events, EVENTS, (int)(left * 1000.0) + 1);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            failed = errno;
            break;
        }
        wakeups += k > 0;
        for (int i = 0; i < k; i++) {
            ssize_t r = recv(events[i].data.fd, buf, CHUNK, MSG_DONTWAIT);
            if (r > 0) {
                total += r;
                reads++;
            } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, events[i].data.fd, NULL);
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    close(ep);
    if (failed) {
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(LLL)", total, reads, wakeups);
}

static PyMethodDef methods[] = {
    {"drain", drain, METH_VARARGS,
     "drain(fds, seconds) -> (bytes, reads, wakeups): read every ready socket until the "
     "deadline, the GIL released"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_netfloor", "The receiving half of the loopback floor probe.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__netfloor(void)
{
    return PyModule_Create(&module);
}
