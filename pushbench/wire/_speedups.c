/* C speedup for the codec's hottest primitive: XOR masking (RFC 6455 §5.3).
 *
 * Optional: pushbench.wire.mask falls back to pure Python (integer XOR for
 * small payloads, numpy for large ones) when this module did not build.
 * Eight bytes per step; the key is widened to 64 bits once per call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, key;
    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &key)) {
        return NULL;
    }
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
        PyBuffer_Release(&data);
        PyBuffer_Release(&key);
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        const unsigned char *src = data.buf;
        const unsigned char *k = key.buf;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t n = data.len, i = 0;
        uint64_t k64;
        unsigned char kk[8] = {k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]};
        memcpy(&k64, kk, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= k64;
            memcpy(dst + i, &w, 8);
        }
        for (; i < n; i++) {
            dst[i] = src[i] ^ k[i & 3];
        }
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key) -> bytes: data XOR key repeated from offset 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pushbench.wire._speedups", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
