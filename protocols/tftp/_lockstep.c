/* The lock-step sender (windowsize 1) of a read from a file, compiled: the same contract as
 * ``BlockSender`` in ``_window.py`` with one block in flight, plus ``pump``, which moves blocks
 * between a connected socket and the file without the interpreter while the client's datagrams
 * are plain ACKs. Anything else is handed back to the Python engine. ``_window.py`` is the
 * reference; the tests drive both with the same event sequences and compare what they send.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* what ``pump`` returns when it does not return a datagram's length */
#define PUMP_IDLE (-1)        /* nothing more to read now: wait for the socket again */
#define PUMP_DONE (-2)        /* the last block was acknowledged */
#define PUMP_SEND_BLOCKED (-3) /* the send buffer refused the block: ``current`` is to be sent */
#define PUMP_READ_FAILED (-4) /* reading the file failed: the transfer cannot go on */

/* read the file this much at a time, so the disk sees large reads */
#define CHUNK (64 * 1024)

typedef struct {
    PyObject_HEAD
    int fd;                  /* the file, read with ``pread`` from ``offset`` */
    long long offset;
    unsigned char *chunk;    /* CHUNK bytes of the file from ``chunk_at`` */
    Py_ssize_t chunk_len, chunk_pos;
    unsigned char *datagram; /* DATA ``sent``: 4 header bytes and the payload */
    Py_ssize_t length;
    Py_ssize_t blksize;
    double timeout;
    int retries, tries;
    long long acked, sent, last; /* ``last`` is -1 until the short block is read */
    double deadline;
    int armed, done, failed;
    long long size;
    int calm;                /* blocks left before ``pump`` guesses a receive again */
    int read_errno;
} Sender;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Fill the payload of the next block; the payload length, or -1 with ``read_errno`` set.
 * Called without the GIL. */
static Py_ssize_t read_block(Sender *self) {
    Py_ssize_t filled = 0;
    while (filled < self->blksize) {
        if (self->chunk_pos == self->chunk_len) {
            ssize_t n;
            do {
                n = pread(self->fd, self->chunk, CHUNK, (off_t)self->offset);
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                self->read_errno = errno;
                return -1;
            }
            if (n == 0)
                break;
            self->offset += n;
            self->chunk_len = n;
            self->chunk_pos = 0;
        }
        Py_ssize_t take = self->chunk_len - self->chunk_pos;
        if (take > self->blksize - filled)
            take = self->blksize - filled;
        memcpy(self->datagram + 4 + filled, self->chunk + self->chunk_pos, (size_t)take);
        self->chunk_pos += take;
        filled += take;
    }
    return filled;
}

/* The unacknowledged block, read first if it is new: 0, or -1 if the read failed. */
static int send_window(Sender *self, double now) {
    long long block = self->acked + 1;
    if (block > self->sent) {
        Py_ssize_t n = read_block(self);
        if (n < 0)
            return -1;
        self->datagram[0] = 0;
        self->datagram[1] = 3;
        self->datagram[2] = (unsigned char)((block >> 8) & 0xFF);
        self->datagram[3] = (unsigned char)(block & 0xFF);
        self->length = 4 + n;
        self->sent = block;
        self->size += n;
        if (n < self->blksize)
            self->last = block;
    }
    self->deadline = now + self->timeout;
    self->armed = 1;
    return 0;
}

/* An ACK of wire block ``block``: 1 if there is a block to send, 0 if not, -1 on a read error. */
static int on_ack(Sender *self, long block, double now) {
    if (self->done || self->failed)
        return 0;
    long long advance = (block - self->acked) & 0xFFFF;
    if (advance == 0 || advance > self->sent - self->acked)
        return 0; /* a duplicate or a stale ACK: never answered */
    self->acked += advance;
    self->tries = 0;
    if (self->acked == self->last) {
        self->done = 1;
        self->armed = 0;
        return 0;
    }
    return send_window(self, now) < 0 ? -1 : 1;
}

static PyObject *read_error(Sender *self) {
    errno = self->read_errno;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* The buffer protocol: the datagram in flight, read-only. The buffer is never reallocated, and
 * a view holds a reference to the sender, so a view never outlives the memory it shows. */
static int Sender_getbuffer(Sender *self, Py_buffer *view, int flags) {
    if (self->datagram == NULL) {
        PyErr_SetString(PyExc_ValueError, "LockstepSender is not initialised");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, self->datagram, self->length, 1, flags);
}

static PyBufferProcs Sender_as_buffer = {.bf_getbuffer = (getbufferproc)Sender_getbuffer};

/* ``[current datagram]``: a view of the sender's buffer, valid until its next call */
static PyObject *current_list(Sender *self) {
    PyObject *view = PyMemoryView_FromObject((PyObject *)self);
    if (view == NULL)
        return NULL;
    PyObject *out = PyList_New(1);
    if (out == NULL) {
        Py_DECREF(view);
        return NULL;
    }
    PyList_SET_ITEM(out, 0, view);
    return out;
}

static int Sender_init(Sender *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"fd", "blksize", "timeout", "retries", NULL};
    int fd, retries;
    Py_ssize_t blksize;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "indi", keywords, &fd, &blksize, &timeout,
                                     &retries))
        return -1;
    if (self->datagram != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LockstepSender is already initialised");
        return -1;
    }
    if (fd < 0 || blksize < 8 || blksize > 65464 || retries < 0 || !(timeout > 0)) {
        PyErr_SetString(PyExc_ValueError, "LockstepSender: bad fd, blksize, timeout or retries");
        return -1;
    }
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->chunk = PyMem_Malloc(CHUNK);
    self->datagram = PyMem_Malloc((size_t)(4 + blksize));
    if (self->chunk == NULL || self->datagram == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->fd = fd;
    self->offset = at;
    self->blksize = blksize;
    self->timeout = timeout;
    self->retries = retries;
    self->last = -1;
    return 0;
}

static void Sender_dealloc(Sender *self) {
    PyMem_Free(self->chunk);
    PyMem_Free(self->datagram);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *empty_list(void) { return PyList_New(0); }

static PyObject *Sender_start(Sender *self, PyObject *arg) {
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    int failed;
    Py_BEGIN_ALLOW_THREADS failed = send_window(self, now);
    Py_END_ALLOW_THREADS if (failed) return read_error(self);
    return current_list(self);
}

static PyObject *Sender_on_ack(Sender *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_ack(block, now)");
        return NULL;
    }
    long block = PyLong_AsLong(args[0]);
    if (block == -1 && PyErr_Occurred())
        return NULL;
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    int result;
    Py_BEGIN_ALLOW_THREADS result = on_ack(self, block, now);
    Py_END_ALLOW_THREADS if (result < 0) return read_error(self);
    return result ? current_list(self) : empty_list();
}

static PyObject *Sender_on_timeout(Sender *self, PyObject *arg) {
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (self->done || self->failed || !self->armed || now < self->deadline)
        return empty_list();
    self->tries += 1;
    if (self->tries > self->retries) {
        self->failed = 1;
        self->armed = 0;
        return empty_list();
    }
    if (send_window(self, now) < 0) /* the block was read already: this only re-arms */
        return read_error(self);
    return current_list(self);
}

static PyObject *Sender_current(Sender *self, PyObject *Py_UNUSED(ignored)) {
    return current_list(self);
}

/* pump(sock_fd, buffer, lone, burst, calm) -> int
 *
 * Receive on the connected, non-blocking (or ``SO_RCVTIMEO``-bounded) socket; while what arrives
 * is an ACK, answer it as ``on_ack`` does and send the next block. After a block is sent, guess
 * that the answer is already there and receive again, up to ``burst`` blocks in a row (blocking
 * when ``lone``); a guess that finds nothing stops guessing for ``calm`` blocks. Returns the length
 * of a datagram left in ``buffer`` for the engine (anything but an ACK), or a PUMP_ code. A failed
 * receive raises ``OSError``; a failed read returns PUMP_READ_FAILED.
 */
static PyObject *Sender_pump(Sender *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "pump(sock_fd, buffer, lone, burst, calm)");
        return NULL;
    }
    int sock = (int)PyLong_AsLong(args[0]);
    if (sock == -1 && PyErr_Occurred())
        return NULL;
    int lone = PyObject_IsTrue(args[2]);
    long burst_size = PyLong_AsLong(args[3]);
    long calm_size = PyLong_AsLong(args[4]);
    if (lone < 0 || PyErr_Occurred())
        return NULL;
    Py_buffer buffer;
    if (PyObject_GetBuffer(args[1], &buffer, PyBUF_WRITABLE) < 0)
        return NULL;
    unsigned char *in = buffer.buf;
    long result = PUMP_IDLE;
    int recv_errno = 0;
    Py_BEGIN_ALLOW_THREADS
    long burst = burst_size;
    while (burst > 0) {
        int guessing = burst < burst_size;
        ssize_t n = recv(sock, in, (size_t)buffer.len, guessing && lone ? 0 : MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (guessing)
                    self->calm = (int)calm_size;
            } else if (errno == EINTR) {
                continue;
            } else {
                recv_errno = errno;
            }
            break;
        }
        if (n != 4 || in[0] != 0 || in[1] != 4 || self->done || self->failed) {
            result = (long)n;
            break;
        }
        int step = on_ack(self, ((long)in[2] << 8) | in[3], monotonic());
        if (step < 0) {
            result = PUMP_READ_FAILED;
            break;
        }
        if (self->done) {
            result = PUMP_DONE;
            break;
        }
        if (step > 0 && send(sock, self->datagram, (size_t)self->length, MSG_DONTWAIT) < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK)) {
            result = PUMP_SEND_BLOCKED;
            break;
        } /* other send errors (an ICMP error left by an earlier send): timeouts judge the peer */
        burst -= 1;
        if (self->calm > 0) {
            self->calm -= 1;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buffer);
    if (recv_errno) {
        errno = recv_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(result);
}

static PyObject *Sender_get_deadline(Sender *self, void *Py_UNUSED(closure)) {
    if (!self->armed)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->deadline);
}

static PyObject *Sender_get_done(Sender *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->done);
}

static PyObject *Sender_get_failed(Sender *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->failed);
}

static PyObject *Sender_get_size(Sender *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(self->size);
}

static PyObject *Sender_get_blksize(Sender *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(self->blksize);
}

static PyObject *Sender_get_retries(Sender *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->retries);
}

static PyGetSetDef Sender_getset[] = {
    {"deadline", (getter)Sender_get_deadline, NULL, "when ``on_timeout`` is due, or None", NULL},
    {"done", (getter)Sender_get_done, NULL, "the last block was acknowledged", NULL},
    {"failed", (getter)Sender_get_failed, NULL, "the retries ran out", NULL},
    {"size", (getter)Sender_get_size, NULL, "bytes read from the file so far", NULL},
    {"blksize", (getter)Sender_get_blksize, NULL, "payload octets per block", NULL},
    {"retries", (getter)Sender_get_retries, NULL, "timeouts in a row before failing", NULL},
    {NULL},
};

static PyMethodDef Sender_methods[] = {
    {"start", (PyCFunction)Sender_start, METH_O, "start(now): the first block"},
    {"on_ack", (PyCFunction)(void (*)(void))Sender_on_ack, METH_FASTCALL,
     "on_ack(block, now): the next block if the ACK acknowledges the one in flight"},
    {"on_timeout", (PyCFunction)Sender_on_timeout, METH_O,
     "on_timeout(now): resend the block in flight, or give up"},
    {"current", (PyCFunction)Sender_current, METH_NOARGS, "current(): [the block in flight]"},
    {"pump", (PyCFunction)(void (*)(void))Sender_pump, METH_FASTCALL,
     "pump(sock_fd, buffer, lone, burst, calm): answer ACKs on the socket without the engine"},
    {NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "protocols.tftp._lockstep.LockstepSender",
    .tp_doc = "LockstepSender(fd, blksize, timeout, retries): one block in flight, read from fd",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_methods = Sender_methods,
    .tp_getset = Sender_getset,
    .tp_as_buffer = &Sender_as_buffer,
};

static struct PyModuleDef lockstep_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "protocols.tftp._lockstep",
    .m_doc = "The compiled lock-step sender of a read from a file.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__lockstep(void) {
    if (PyType_Ready(&SenderType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&lockstep_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "LockstepSender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddIntConstant(module, "PUMP_IDLE", PUMP_IDLE) < 0 ||
        PyModule_AddIntConstant(module, "PUMP_DONE", PUMP_DONE) < 0 ||
        PyModule_AddIntConstant(module, "PUMP_SEND_BLOCKED", PUMP_SEND_BLOCKED) < 0 ||
        PyModule_AddIntConstant(module, "PUMP_READ_FAILED", PUMP_READ_FAILED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
