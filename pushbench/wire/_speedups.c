/* C speedups of the WebSocket codec (RFC 6455 §5): masking, frame parsing, frame encoding.
 *
 * Optional: pushbench.wire falls back to pure Python (pushbench.wire.speedups
 * says which path is in use; PUSHBENCH_NO_SPEEDUPS=1 forces the pure one).
 *
 * - apply_mask(data, key): XOR with the key repeated, eight bytes per step.
 * - parse_frames(frame_type, out, data, pos, flags, rsv_allowed, max_frame,
 *   max_message) -> (pos, status): decodes every *complete* frame from
 *   data[pos:] that needs no state of the reader (control frames, and data
 *   frames that are a whole message: FIN set, not a continuation, no fragmented
 *   message open), unmasks its payload into a fresh bytes object, validates a
 *   text payload as UTF-8, and appends frame_type(opcode, payload, fin, rsv) to
 *   out. It stops, returning the position of the frame it did not take, at the
 *   first frame that is incomplete (STATUS_END), belongs to a fragmented message
 *   (STATUS_FRAGMENT), is a control frame or a compressed (RSV1) data frame in
 *   payloads-only mode (STATUS_CONTROL) or breaks a rule (a STATUS_* >= 16 naming the rule).
 *   FrameReader hands every such frame to its pure Python path, which applies
 *   the same rules in the same order and raises the same ProtocolError, so the
 *   two paths cannot disagree on what is an error or on its close code.
 * - encode_frame(b0, payload, key) -> bytes: header with the minimal length
 *   encoding, the key when masking, and the (masked) payload, in one allocation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* parse_frames flags */
#define F_MASKED 1        /* the peer must mask (we are the server) */
#define F_IN_MESSAGE 2    /* a fragmented message is open in the reader */
#define F_PAYLOADS_ONLY 4 /* append payload bytes of data frames, stop at control frames */

/* parse_frames statuses: keep in step with pushbench/wire/frames.py (C_STATUS) */
#define STATUS_END 0
#define STATUS_FRAGMENT 1
#define STATUS_CONTROL 2
#define ERR_RSV 16
#define ERR_OPCODE 17
#define ERR_FRAGMENTED_CONTROL 18
#define ERR_MASK 19
#define ERR_CONTROL_TOO_LONG 20
#define ERR_NON_MINIMAL_16 21
#define ERR_OVER_2_63 22
#define ERR_NON_MINIMAL_64 23
#define ERR_FRAME_TOO_BIG 24
#define ERR_MESSAGE_TOO_BIG 25
#define ERR_UTF8 26

static inline void
xor_into(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *k)
{
    Py_ssize_t i = 0;
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
        xor_into((unsigned char *)PyBytes_AS_STRING(result), data.buf, data.len, key.buf);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return result;
}

/* Strict UTF-8 as Python's codec sees it: no overlongs, no surrogates, nothing
 * above U+10FFFF, no truncated sequence at the end. */
static int
utf8_valid(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
        }
        else if (c < 0xC2) {
            return 0;
        }
        else if (c < 0xE0) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) {
                return 0;
            }
            i += 2;
        }
        else if (c < 0xF0) {
            if (i + 2 >= n) {
                return 0;
            }
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F)) {
                return 0;
            }
            i += 3;
        }
        else if (c < 0xF5) {
            if (i + 3 >= n) {
                return 0;
            }
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80 || (c == 0xF0 && c1 < 0x90) ||
                (c == 0xF4 && c1 > 0x8F)) {
                return 0;
            }
            i += 4;
        }
        else {
            return 0;
        }
    }
    return 1;
}

static long long
as_limit(PyObject *obj)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow > 0) {
        return LLONG_MAX;
    }
    if (overflow < 0) {
        return -1;
    }
    return v;
}

static PyObject *
done(Py_ssize_t pos, int status)
{
    return Py_BuildValue("(ni)", pos, status);
}

static PyObject *
parse_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "parse_frames takes 8 arguments");
        return NULL;
    }
    PyObject *type_obj = args[0];
    PyObject *out = args[1];
    if (!PyType_Check(type_obj) ||
        !PyType_IsSubtype((PyTypeObject *)type_obj, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "frame_type must be a tuple subclass");
        return NULL;
    }
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    PyTypeObject *frame_type = (PyTypeObject *)type_obj;
    Py_ssize_t pos = PyLong_AsSsize_t(args[3]);
    long flags = PyLong_AsLong(args[4]);
    long rsv_allowed = PyLong_AsLong(args[5]);
    long long max_frame = as_limit(args[6]);
    long long max_message = as_limit(args[7]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *buf = view.buf;
    const Py_ssize_t end = view.len;
    const int masked = (flags & F_MASKED) != 0;
    const int in_message = (flags & F_IN_MESSAGE) != 0;
    const int payloads_only = (flags & F_PAYLOADS_ONLY) != 0;
    const unsigned mbit = masked ? 0x80 : 0;
    const Py_ssize_t head0 = masked ? 6 : 2;
    int status = STATUS_END;
    if (pos < 0 || pos > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }

    while (end - pos >= 2) {
        const Py_ssize_t avail = end - pos;
        const unsigned b0 = buf[pos];
        const unsigned b1 = buf[pos + 1];
        const unsigned opcode = b0 & 0x0F;
        const int fin = (b0 & 0x80) != 0;
        /* The pure path's order: first byte (RSV, opcode, fragmented control), mask bit,
         * control length, extended lengths, frame size, then message state. */
        if (b0 & 0x70 & ~rsv_allowed) {
            status = ERR_RSV;
            break;
        }
        if (!(opcode <= 2 || (opcode >= 8 && opcode <= 10))) {
            status = ERR_OPCODE;
            break;
        }
        if (opcode >= 8 && !fin) {
            status = ERR_FRAGMENTED_CONTROL;
            break;
        }
        /* RSV1 (permessage-deflate, RFC 7692 §6, when rsv_allowed has it): first frame of
         * a data message only. */
        if ((b0 & 0x40) && (opcode == 0 || opcode >= 8)) {
            status = ERR_RSV;
            break;
        }
        if ((b1 & 0x80) != mbit) {
            status = ERR_MASK;
            break;
        }
        uint64_t length = b1 & 0x7F;
        Py_ssize_t head = head0;
        if (length >= 126) {
            if (opcode >= 8) {
                status = ERR_CONTROL_TOO_LONG;
                break;
            }
            if (length == 126) {
                head += 2;
                if (avail < head) {
                    break;
                }
                length = ((uint64_t)buf[pos + 2] << 8) | buf[pos + 3];
                if (length < 126) {
                    status = ERR_NON_MINIMAL_16;
                    break;
                }
            }
            else {
                head += 8;
                if (avail < head) {
                    break;
                }
                length = 0;
                for (int i = 2; i < 10; i++) {
                    length = (length << 8) | buf[pos + i];
                }
                if (length >> 63) {
                    status = ERR_OVER_2_63;
                    break;
                }
                if (length < 65536) {
                    status = ERR_NON_MINIMAL_64;
                    break;
                }
            }
        }
        else if (avail < head) {
            break;
        }
        if ((long long)length > max_frame) {
            status = ERR_FRAME_TOO_BIG;
            break;
        }
        if (opcode < 8) {
            if (opcode == 0 || !fin || in_message) {
                status = STATUS_FRAGMENT;
                break;
            }
            if ((long long)length > max_message) {
                status = ERR_MESSAGE_TOO_BIG;
                break;
            }
            if (payloads_only && (b0 & 0x40)) {
                status = STATUS_CONTROL; /* compressed: the caller needs the frame's RSV1 */
                break;
            }
        }
        else if (payloads_only) {
            status = STATUS_CONTROL;
            break;
        }
        if (length > (uint64_t)(avail - head)) {
            break; /* payload still arriving: the pure path streams it */
        }
        const Py_ssize_t n = (Py_ssize_t)length;
        const unsigned char *src = buf + pos + head;
        /* A compressed (RSV1) text payload is UTF-8 only once inflated: the caller checks. */
        const int text = opcode == 1 && !(b0 & 0x40);
        if (text && !masked && !utf8_valid(src, n)) {
            status = ERR_UTF8;
            break;
        }
        PyObject *payload = PyBytes_FromStringAndSize(masked ? NULL : (const char *)src, n);
        if (payload == NULL) {
            goto error;
        }
        if (masked) {
            unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(payload);
            xor_into(dst, src, n, src - 4);
            if (text && !utf8_valid(dst, n)) {
                Py_DECREF(payload);
                status = ERR_UTF8;
                break;
            }
        }
        int rc;
        if (payloads_only) {
            rc = PyList_Append(out, payload);
            Py_DECREF(payload);
        }
        else {
            PyObject *frame = frame_type->tp_alloc(frame_type, 4);
            if (frame == NULL) {
                Py_DECREF(payload);
                goto error;
            }
            PyTuple_SET_ITEM(frame, 0, PyLong_FromLong(opcode));
            PyTuple_SET_ITEM(frame, 1, payload);
            PyTuple_SET_ITEM(frame, 2, Py_NewRef(fin ? Py_True : Py_False));
            PyTuple_SET_ITEM(frame, 3, PyLong_FromLong(b0 & 0x70));
            rc = PyList_Append(out, frame);
            Py_DECREF(frame);
        }
        if (rc < 0) {
            goto error;
        }
        pos += head + n;
    }
    PyBuffer_Release(&view);
    return done(pos, status);

error:
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *
encode_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_frame takes 3 arguments");
        return NULL;
    }
    long b0 = PyLong_AsLong(args[0]);
    if (b0 == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (b0 < 0 || b0 > 255) {
        PyErr_SetString(PyExc_ValueError, "first byte out of range");
        return NULL;
    }
    Py_buffer data, key;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int masked = args[2] != Py_None;
    if (masked) {
        if (PyObject_GetBuffer(args[2], &key, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (key.len != 4) {
            PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
            PyBuffer_Release(&key);
            PyBuffer_Release(&data);
            return NULL;
        }
    }
    const Py_ssize_t n = data.len;
    unsigned char head[14];
    Py_ssize_t h = 2;
    head[0] = (unsigned char)b0;
    if (n < 126) {
        head[1] = (unsigned char)n;
    }
    else if (n < 65536) {
        head[1] = 126;
        head[2] = (unsigned char)(n >> 8);
        head[3] = (unsigned char)n;
        h = 4;
    }
    else {
        head[1] = 127;
        uint64_t len = (uint64_t)n;
        for (int i = 9; i >= 2; i--) {
            head[i] = (unsigned char)len;
            len >>= 8;
        }
        h = 10;
    }
    if (masked) {
        head[1] |= 0x80;
        memcpy(head + h, key.buf, 4);
        h += 4;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, h + n);
    if (result != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        memcpy(dst, head, h);
        if (masked) {
            xor_into(dst + h, data.buf, n, key.buf);
        }
        else {
            memcpy(dst + h, data.buf, n);
        }
    }
    if (masked) {
        PyBuffer_Release(&key);
    }
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key) -> bytes: data XOR key repeated from offset 0."},
    {"parse_frames", (PyCFunction)(void (*)(void))parse_frames, METH_FASTCALL,
     "parse_frames(frame_type, out, data, pos, flags, rsv_allowed, max_frame, max_message)"
     " -> (pos, status): append the complete stateless frames of data[pos:] to out."},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     "encode_frame(b0, payload, key) -> bytes: one frame, masked with key unless None."},
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
