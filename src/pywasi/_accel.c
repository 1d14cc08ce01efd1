/* pywasi._accel: the compiled host-call trampoline (optional; issue 5).
 *
 * wasmtime calls a host function defined with
 * wasmtime_linker_define_func_unchecked as
 *     wasm_trap_t *cb(void *env, wasmtime_caller_t *caller,
 *                     wasmtime_val_raw_t *args_and_results, size_t n);
 * The ctypes route (_dispatch._make_raw) does this in Python for ~0.3 us of
 * ctypes machinery a call; here it is a C function that calls the syscall
 * (a Python bound method) directly with vectorcall.
 *
 * What it does: take the GIL (a host call may come from any thread), read
 * each i32/i64 argument as the spec's *unsigned* value, call the syscall,
 * store SUCCESS in the result slot. Every exception goes back to Python, to
 * the one function that classifies it (HostFunction.outcome): it answers an
 * int (the errno to store) or a str (a trap message). So the dispatcher's
 * rules live in one place for both routes.
 *
 * Some calls have their hot case done here (fast_clock_time_get;
 * fast_fdstat: fd_fdstat_get of a directory; fast_io: fd_read, fd_write,
 * fd_pread, fd_pwrite of one iovec to a host file or stream), only where the
 * bounds and alignment checks the Python syscall makes are sure to pass (the
 * fd and rights check is the fd table's own get()); anything else goes to
 * the Python syscall, so results, errno values and trap messages stay the
 * Python code's.
 *
 * It also gives the resolver (_fs/_resolve.py, _fs/_stat.py) two host
 * syscalls without Python's overhead: openat2() and fstatat(). Which
 * lookups are made stays in Python.
 *
 * It does not link against libwasmtime: the one wasmtime function it calls,
 * wasmtime_trap_new, is handed over as an address by setup() (_engine takes
 * it from wasmtime-py's loaded library with ctypes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

/* wasmtime_val_raw_t: a 16-byte union; an i32 is its low 4 bytes, an i64 its
 * low 8, a result is written over the first argument. */
typedef union {
    int32_t i32;
    int64_t i64;
    unsigned char v128[16];
} val_raw;

typedef void *(*trap_new_fn)(const char *message, size_t len);

static trap_new_fn trap_new = NULL;

/* preview1's widest function (path_open) takes 9 parameters. */
#define MAX_PARAMS 16

enum { KIND_I32 = 0, KIND_I64 = 1 };

/* MemoryCell: the bound guest memory's base and size as C reads them, kept
 * by _memory.GuestMemory.refresh() (set only for a memory whose base cannot
 * move). Memory never shrinks, so an access inside `size` stays in bounds;
 * anything else is left to the Python syscall, which checks it and traps.
 * `threads`: a wasi-threads program is running (Context.set_cancel_fd), so
 * a call that may block must wait where the end of the program can cancel
 * it, which only the Python syscall does (see acquire_desc). */
typedef struct {
    PyObject_HEAD
    unsigned char *base;
    uint64_t size;
    char threads;
} MemoryCell;

static PyTypeObject *MemoryCell_Type;

/* Calls the C side answers itself in their hottest case (see fast_path);
 * from FAST_FD_READ on, the fd_read/fd_write family (fast_io). */
enum { FAST_NONE = 0, FAST_CLOCK_TIME_GET, FAST_FD_FDSTAT_GET,
       FAST_FD_READ, FAST_FD_WRITE, FAST_FD_PREAD, FAST_FD_PWRITE };

/* The spec's filetype.regular_file. */
#define FILETYPE_REGULAR_FILE 4

/* The per-function env: owned by wasmtime, freed by finalize(). */
typedef struct {
    PyObject *impl;     /* the syscall: impl(*unsigned_args) -> None */
    PyObject *outcome;  /* outcome(exc) -> int errno | str trap message */
    MemoryCell *cell;   /* with a fast path: the memory it may write */
    int fast;
    /* the fd calls' (fd_fdstat_get, the fd_read/fd_write family: see
     * fast_fdstat, fast_io, FdCalls.fd_write_accel): FdTable.get, the rights
     * the syscall asks for, the descriptor classes it mirrors (HostDirectory;
     * HostFile and HostStream or None) */
    PyObject *fds_get, *rights, *file_type, *stream_type;
    Py_ssize_t nparams;
    int has_result;
    unsigned char kinds[MAX_PARAMS];
} host_env;

static void *failed(host_env *env, val_raw *args);
static PyObject *str_fd, *str_filetype, *str_write_rest, *str_rights_base, *str_rights_inheriting;

/* clock_time_get(id, precision, time_ptr) for REALTIME and MONOTONIC at an
 * aligned in-bounds pointer: what clock.py does (time.time_ns and
 * time.monotonic_ns read the same clock_gettime clocks), without the GIL.
 * Returns 0 if it answered, -1 to leave the call to Python. */
static int
fast_clock_time_get(host_env *env, val_raw *args)
{
    uint32_t id = (uint32_t)args[0].i32, ptr = (uint32_t)args[2].i32;
    MemoryCell *cell = env->cell;
    struct timespec ts;
    uint64_t ns;

    if (id > 1 || (ptr & 7) || (uint64_t)ptr + 8 > cell->size)
        return -1;
    if (clock_gettime(id == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts) != 0 || ts.tv_sec < 0)
        return -1;
    ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    memcpy(cell->base + ptr, &ns, 8);  /* wasm is little-endian, as the host (see new_env) */
    args[0].i32 = 0;
    return 0;
}

static void *
trap_from_str(PyObject *message)
{
    /* "replace": a message may hold a path with lone surrogates. */
    PyObject *data = PyUnicode_AsEncodedString(message, "utf-8", "replace");
    void *trap;
    if (data == NULL) {
        static const char fallback[] = "pywasi internal error: a trap message could not be encoded";
        PyErr_Clear();
        return trap_new(fallback, sizeof fallback - 1);
    }
    trap = trap_new(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    Py_DECREF(data);
    return trap;
}

/* The fd table's get(fd, rights) with the rights the env's syscall asks for:
 * the descriptor (a new reference), or NULL with get()'s exception (BADF,
 * NOTCAPABLE). The first step of every fast path that takes an fd. Called
 * with the GIL. */
static PyObject *
table_get(host_env *env, uint32_t fd)
{
    PyObject *argv[3], *desc;

    argv[1] = PyLong_FromUnsignedLong(fd);
    if (argv[1] == NULL)
        return NULL;
    argv[2] = env->rights;
    desc = PyObject_Vectorcall(env->fds_get, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(argv[1]);
    return desc;
}

/* fd_fdstat_get(fd, stat_ptr) of a directory (wasi-libc asks for the
 * directory's rights before every open under it) at an aligned in-bounds
 * pointer: FdCalls.fd_fdstat_get's fdstat of a descriptor of exactly the
 * class fd_fdstat_get_accel names, whose fdflags are always 0 (it keeps no
 * host flags). Anything else, a refused fd included, goes to Python.
 * Called with the GIL. Returns 0 if it answered, -1 to leave the call. */
static int
fast_fdstat(host_env *env, val_raw *args)
{
    uint32_t ptr = (uint32_t)args[1].i32;
    MemoryCell *cell = env->cell;
    PyObject *desc, *value;
    unsigned long long fields[3];  /* filetype, rights_base, rights_inheriting */
    PyObject *names[3] = {str_filetype, str_rights_base, str_rights_inheriting};
    unsigned char out[24];
    int i;

    if ((ptr & 7) || (uint64_t)ptr + sizeof out > cell->size)
        return -1;
    desc = table_get(env, (uint32_t)args[0].i32);
    if (desc == NULL)
        goto leave_clear;
    if (Py_TYPE(desc) != (PyTypeObject *)env->file_type) {
        Py_DECREF(desc);
        return -1;
    }
    for (i = 0; i < 3; i++) {
        value = PyObject_GetAttr(desc, names[i]);
        fields[i] = value != NULL ? PyLong_AsUnsignedLongLong(value) : (unsigned long long)-1;
        Py_XDECREF(value);
        if (fields[i] == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(desc);
            goto leave_clear;
        }
    }
    Py_DECREF(desc);
    if (fields[0] > 0xff)
        return -1;
    /* FDSTAT: u8 filetype @0, u16 flags @2 (0), u64 rights @8 and @16, the
     * padding zero as struct.pack writes it. */
    memset(out, 0, sizeof out);
    out[0] = (unsigned char)fields[0];
    memcpy(out + 8, &fields[1], 8);
    memcpy(out + 16, &fields[2], 8);
    memcpy(cell->base + ptr, out, sizeof out);
    args[0].i32 = 0;
    return 0;
leave_clear:
    PyErr_Clear();
    return -1;
}

/* The syscall raised: ask outcome() what that means. Called with the GIL. */
static void *
failed(host_env *env, val_raw *args)
{
    PyObject *type, *value, *tb, *answer;
    void *trap = NULL;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL)
        PyException_SetTraceback(value, tb);
    answer = value != NULL ? PyObject_CallOneArg(env->outcome, value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (answer != NULL && PyLong_Check(answer) && env->has_result) {
        long errno_value = PyLong_AsLong(answer);
        if (errno_value >= 0 && errno_value <= 0xFFFF) {
            args[0].i32 = (int32_t)errno_value;
            Py_DECREF(answer);
            return NULL;
        }
    }
    else if (answer != NULL && PyUnicode_Check(answer)) {
        trap = trap_from_str(answer);
        Py_DECREF(answer);
        return trap;
    }
    /* outcome() itself failed or answered nonsense: a bug in pywasi. */
    Py_XDECREF(answer);
    PyErr_Clear();
    {
        static const char msg[] = "pywasi internal error: a host call's outcome could not be classified";
        return trap_new(msg, sizeof msg - 1);
    }
}

/* The fd_read/fd_write family (fd_read, fd_write, fd_pread, fd_pwrite) with
 * one in-bounds iovec, on a HostFile (fd_read, and every call while threads
 * run: a regular one, where the Python syscall's when_readable() and
 * when_writable() never wait) or, for fd_write, a HostStream: what the
 * Python syscalls and those classes' read/write do,
 * the syscall without the GIL. Everything is checked before the descriptor
 * is touched, so a call that leaves to Python has had no effect. */

/* The one place the fd_read family takes a descriptor whose host fd it uses
 * without the GIL: table_get() (BADF, NOTCAPABLE: the Python syscall's
 * first step), then the host fd. A guard that keeps the host fd open while
 * the GIL is released (an in-use count against a concurrent fd_close)
 * belongs here and in release_desc(), which every path that took a
 * descriptor calls.
 * Returns a new reference and sets *host_fd; NULL with an exception set if
 * get() refused; NULL without one for a descriptor the C side does not
 * mirror (the call goes to Python). Called with the GIL. */
static PyObject *
acquire_desc(host_env *env, uint32_t fd, int *host_fd)
{
    PyObject *desc, *value;
    PyTypeObject *type;
    long n;

    desc = table_get(env, fd);
    if (desc == NULL)
        return NULL;
    type = Py_TYPE(desc);
    if (type != (PyTypeObject *)env->file_type && type != (PyTypeObject *)env->stream_type)
        goto leave;
    /* Only a regular file never blocks: fd_read's, and while threads run
     * every call's (the Python syscall waits where the end can cancel it). */
    if (env->fast == FAST_FD_READ || env->cell->threads) {
        value = PyObject_GetAttr(desc, str_filetype);
        n = value != NULL ? PyLong_AsLong(value) : -1;
        Py_XDECREF(value);
        if (n != FILETYPE_REGULAR_FILE)
            goto leave;
    }
    value = PyObject_GetAttr(desc, str_fd);
    n = value != NULL ? PyLong_AsLong(value) : -1;
    Py_XDECREF(value);
    if (n >= 0 && n <= INT32_MAX) {
        *host_fd = (int)n;
        return desc;
    }
leave:
    PyErr_Clear();
    Py_DECREF(desc);
    return NULL;
}

static void
release_desc(PyObject *desc)
{
    Py_DECREF(desc);
}

/* One read(2)/write(2)/pread(2)/pwrite(2) without the GIL, retried on EINTR
 * as Python's os functions retry it (PEP 475: the signal handlers run first,
 * and one that raises ends the call). Called with the GIL. Returns the
 * count, or -1 (with an exception set if a handler raised). */
static Py_ssize_t
host_io(int fast, int fd, unsigned char *p, size_t len, uint64_t offset)
{
    Py_ssize_t n;
    int saved;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        switch (fast) {
        case FAST_FD_READ: n = read(fd, p, len); break;
        case FAST_FD_PREAD: n = pread(fd, p, len, (off_t)offset); break;
        case FAST_FD_PWRITE: n = pwrite(fd, p, len, (off_t)offset); break;
        default: n = write(fd, p, len); break;
        }
        saved = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0 || saved != EINTR || PyErr_CheckSignals() < 0)
            return n;
    }
}

/* fd_read(fd, iovs, iovs_len, nread_ptr), fd_write(..., nwritten_ptr),
 * fd_pread(fd, iovs, iovs_len, offset, nread_ptr), fd_pwrite(...). A write
 * is finished as the Python route finishes it: a HostFile's as write_all
 * (_fs/_file.py: retry the rest, an error after some bytes reports those; a
 * zero-length write makes no syscall), a HostStream's through its own
 * _write_rest. A host error before any byte moved leaves the call to Python,
 * which redoes it and raises. Called with the GIL. Returns 0 if it answered
 * (*trap set on an error that traps), -1 to leave the call to Python. */
static int
fast_io(host_env *env, val_raw *args, void **trap)
{
    int positioned = env->fast == FAST_FD_PREAD || env->fast == FAST_FD_PWRITE;
    int writing = env->fast == FAST_FD_WRITE || env->fast == FAST_FD_PWRITE;
    uint32_t iovs = (uint32_t)args[1].i32, iovs_len = (uint32_t)args[2].i32;
    uint32_t out_ptr = (uint32_t)args[positioned ? 4 : 3].i32, buf, len, done;
    uint64_t offset = positioned ? (uint64_t)args[3].i64 : 0;
    MemoryCell *cell = env->cell;
    unsigned char *p;
    PyObject *desc, *rest;
    int fd;
    Py_ssize_t n;

    if (iovs_len != 1 || (iovs & 3) || (uint64_t)iovs + 8 > cell->size
            || (out_ptr & 3) || (uint64_t)out_ptr + 4 > cell->size)
        return -1;
    memcpy(&buf, cell->base + iovs, 4);
    memcpy(&len, cell->base + iovs + 4, 4);
    /* past OFF_MAX the Python route answers (INVAL, _fs/_file.py _offset) */
    if ((uint64_t)buf + len > cell->size || offset + len > (uint64_t)INT64_MAX)
        return -1;
    p = cell->base + buf;

    desc = acquire_desc(env, (uint32_t)args[0].i32, &fd);
    if (desc == NULL) {
        if (!PyErr_Occurred())
            return -1;
        *trap = failed(env, args);  /* BADF, NOTCAPABLE */
        return 0;
    }
    if (len == 0 && writing && Py_TYPE(desc) == (PyTypeObject *)env->file_type)
        n = 0;  /* write_all: nothing to write, no syscall */
    else
        n = host_io(env->fast, fd, p, len, offset);
    if (n < 0) {
        release_desc(desc);
        if (!PyErr_Occurred())
            return -1;  /* nothing moved: Python redoes the call and raises */
        *trap = failed(env, args);
        return 0;
    }
    done = (uint32_t)n;
    if (writing && Py_TYPE(desc) == (PyTypeObject *)env->file_type) {
        while (0 < done && done < len) {  /* write_all's loop */
            n = host_io(env->fast, fd, p + done, len - done, offset + done);
            if (n <= 0)
                break;
            done += (uint32_t)n;
        }
    }
    else if (writing && done < len) {  /* a HostStream's short write */
        PyObject *view = PyMemoryView_FromMemory((char *)p + done, (Py_ssize_t)(len - done), PyBUF_READ);
        rest = view != NULL ? PyObject_CallMethodOneArg(desc, str_write_rest, view) : NULL;
        Py_XDECREF(view);
        done += rest != NULL ? (uint32_t)PyLong_AsUnsignedLong(rest) : 0;
        Py_XDECREF(rest);
    }
    release_desc(desc);
    if (PyErr_Occurred()) {  /* a signal handler or _write_rest raised */
        *trap = failed(env, args);
        return 0;
    }
    memcpy(cell->base + out_ptr, &done, 4);
    args[0].i32 = 0;
    *trap = NULL;
    return 0;
}

static void *
trampoline(void *env_, void *caller, val_raw *args, size_t nargs_and_results)
{
    host_env *env = (host_env *)env_;
    /* One spare slot in front: PY_VECTORCALL_ARGUMENTS_OFFSET lets a bound
     * method's vectorcall prepend self without copying the arguments. */
    PyObject *argv[MAX_PARAMS + 1];
    PyObject **a = argv + 1;
    PyObject *result;
    void *trap = NULL;
    Py_ssize_t i, made;
    PyGILState_STATE gil;
    (void)caller;
    (void)nargs_and_results;

    if (env->fast == FAST_CLOCK_TIME_GET && fast_clock_time_get(env, args) == 0)
        return NULL;
    gil = PyGILState_Ensure();
    if (env->fast == FAST_FD_FDSTAT_GET && fast_fdstat(env, args) == 0) {
        PyGILState_Release(gil);
        return NULL;
    }
    if (env->fast >= FAST_FD_READ && fast_io(env, args, &trap) == 0) {
        PyGILState_Release(gil);
        return trap;
    }
    for (made = 0; made < env->nparams; made++) {
        a[made] = env->kinds[made] == KIND_I64
            ? PyLong_FromUnsignedLongLong((unsigned long long)(uint64_t)args[made].i64)
            : PyLong_FromUnsignedLong((unsigned long)(uint32_t)args[made].i32);
        if (a[made] == NULL)
            break;
    }
    if (made == env->nparams)
        result = PyObject_Vectorcall(env->impl, a,
                                     (size_t)env->nparams | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    else
        result = NULL;  /* MemoryError building an int: classified like any exception */
    for (i = 0; i < made; i++)
        Py_DECREF(a[i]);
    if (result != NULL) {
        Py_DECREF(result);
        if (env->has_result)
            args[0].i32 = 0;  /* SUCCESS */
    }
    else {
        trap = failed(env, args);
    }
    PyGILState_Release(gil);
    return trap;
}

static void
finalize(void *env_)
{
    host_env *env = (host_env *)env_;
    /* wasmtime calls this when the last linker/store using the function is
     * gone, which can be while the interpreter shuts down: then the
     * references are left to the dying interpreter (taking the GIL there
     * would hang a non-main thread). */
    if (Py_IsInitialized()) {
        PyGILState_STATE gil = PyGILState_Ensure();
        Py_XDECREF(env->impl);
        Py_XDECREF(env->outcome);
        Py_XDECREF(env->cell);
        Py_XDECREF(env->fds_get);
        Py_XDECREF(env->rights);
        Py_XDECREF(env->file_type);
        Py_XDECREF(env->stream_type);
        PyGILState_Release(gil);
    }
    free(env);
}

PyDoc_STRVAR(setup_doc,
"setup(trap_new_address)\n--\n\n"
"Give the address of wasmtime's wasmtime_trap_new (from the loaded library).");

static PyObject *
accel_setup(PyObject *module, PyObject *arg)
{
    void *address = PyLong_AsVoidPtr(arg);
    if (address == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "wasmtime_trap_new's address is NULL");
        return NULL;
    }
    trap_new = (trap_new_fn)address;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(new_env_doc,
"new_env(impl, params, has_result, outcome, fast) -> int\n--\n\n"
"A new env for the trampoline (its address): impl is called with the\n"
"unsigned arguments, params is a sequence of 'i32'/'i64', outcome(exc)\n"
"answers an errno (int) or a trap message (str). fast is None or\n"
"(name, MemoryCell, extra) when impl is pywasi's own syscall of that name:\n"
"if this file has a fast path for it, its hot case is answered in C;\n"
"extra is what that path needs from Python (fd_read...: see fast_io).\n"
"Owned by wasmtime once passed to a define call: it calls FINALIZER when\n"
"the function is gone (also when the define fails after taking it).");

static PyObject *
accel_new_env(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *params, *item;
    Py_ssize_t n, i;
    int has_result;
    host_env *env;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "new_env() takes 5 arguments");
        return NULL;
    }
    if (trap_new == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pywasi._accel.setup() was not called");
        return NULL;
    }
    if (!PyCallable_Check(args[0]) || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "new_env(): impl and outcome must be callable");
        return NULL;
    }
    has_result = PyObject_IsTrue(args[2]);
    if (has_result < 0)
        return NULL;
    params = PySequence_Fast(args[1], "new_env(): params must be a sequence");
    if (params == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(params);
    if (n > MAX_PARAMS) {
        Py_DECREF(params);
        PyErr_Format(PyExc_ValueError, "new_env(): at most %d params", MAX_PARAMS);
        return NULL;
    }
    env = (host_env *)calloc(1, sizeof *env);
    if (env == NULL) {
        Py_DECREF(params);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++) {
        item = PySequence_Fast_GET_ITEM(params, i);
        if (PyUnicode_Check(item) && PyUnicode_CompareWithASCIIString(item, "i32") == 0)
            env->kinds[i] = KIND_I32;
        else if (PyUnicode_Check(item) && PyUnicode_CompareWithASCIIString(item, "i64") == 0)
            env->kinds[i] = KIND_I64;
        else {
            Py_DECREF(params);
            free(env);
            PyErr_Format(PyExc_ValueError, "new_env(): param %zd is %R, not 'i32' or 'i64'", i, item);
            return NULL;
        }
    }
    Py_DECREF(params);
    if (args[4] != Py_None) {
        static const struct { const char *name; Py_ssize_t nparams; int fast; } fd_calls[] = {
            {"fd_fdstat_get", 2, FAST_FD_FDSTAT_GET},
            {"fd_read", 4, FAST_FD_READ}, {"fd_write", 4, FAST_FD_WRITE},
            {"fd_pread", 5, FAST_FD_PREAD}, {"fd_pwrite", 5, FAST_FD_PWRITE},
        };
        PyObject *name, *cell, *extra, *fds_get, *rights, *file_type, *stream_type;
        size_t k;
        if (!PyArg_ParseTuple(args[4], "UO!O", &name, MemoryCell_Type, &cell, &extra)) {
            free(env);
            return NULL;
        }
#if !PY_BIG_ENDIAN  /* the fast paths copy little-endian wasm values as host ints */
        if (PyUnicode_CompareWithASCIIString(name, "clock_time_get") == 0 && n == 3 && has_result)
            env->fast = FAST_CLOCK_TIME_GET;
        for (k = 0; k < sizeof fd_calls / sizeof fd_calls[0]; k++) {
            stream_type = Py_None;  /* fd_fdstat_get's extra names one class */
            if (PyUnicode_CompareWithASCIIString(name, fd_calls[k].name) == 0
                    && n == fd_calls[k].nparams && has_result && PyTuple_Check(extra)
                    && PyArg_ParseTuple(extra, "OO!O!|O", &fds_get, &PyLong_Type, &rights,
                                        &PyType_Type, &file_type, &stream_type)) {
                env->fast = fd_calls[k].fast;
                Py_INCREF(fds_get);
                env->fds_get = fds_get;
                Py_INCREF(rights);
                env->rights = rights;
                Py_INCREF(file_type);
                env->file_type = file_type;
                Py_INCREF(stream_type);
                env->stream_type = stream_type;
            }
        }
        if (PyErr_Occurred()) {
            finalize(env);
            return NULL;
        }
#endif
        if (env->fast != FAST_NONE) {
            Py_INCREF(cell);
            env->cell = (MemoryCell *)cell;
        }
    }
    env->nparams = n;
    env->has_result = has_result;
    Py_INCREF(args[0]);
    env->impl = args[0];
    Py_INCREF(args[3]);
    env->outcome = args[3];
    return PyLong_FromVoidPtr(env);
}

static PyObject *
cell_set(MemoryCell *self, PyObject *const *args, Py_ssize_t nargs)
{
    void *base;
    unsigned long long size;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set() takes 2 arguments (address, size)");
        return NULL;
    }
    base = PyLong_AsVoidPtr(args[0]);
    if (base == NULL && PyErr_Occurred())
        return NULL;
    size = PyLong_AsUnsignedLongLong(args[1]);
    if (size == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    self->base = (unsigned char *)base;
    self->size = base == NULL ? 0 : (uint64_t)size;
    Py_RETURN_NONE;
}

static PyMethodDef cell_methods[] = {
    {"set", (PyCFunction)(void (*)(void))cell_set, METH_FASTCALL,
     "set(address, size): the memory's base and byte size now (0 for none)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef cell_members[] = {
    {"threads", T_BOOL, offsetof(MemoryCell, threads), 0,
     "A wasi-threads program is running: the fast paths take only regular files."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot cell_slots[] = {
    {Py_tp_doc, "The bound memory's base and size, for the C fast paths."},
    {Py_tp_methods, cell_methods},
    {Py_tp_members, cell_members},
    {0, NULL},
};

static PyType_Spec cell_spec = {
    "pywasi._accel.MemoryCell", sizeof(MemoryCell), 0, Py_TPFLAGS_DEFAULT, cell_slots,
};


/* -- host syscalls the resolver makes on every path call -------------------
 * What os.open/os.stat would do, without what the resolver does not use:
 * openat2 has no os function (the ctypes call cost ~0.8 us), and os.stat
 * builds a stat_result of twenty fields (float times included) where the
 * path calls read eight. Which lookups are made, and why they cannot leave
 * the tree, stays in _fs/_resolve.py. */

PyDoc_STRVAR(openat2_doc,
"openat2(dir_fd, path, flags, mode, resolve) -> int\n--\n\n"
"Linux openat2(2) with struct open_how {flags, mode, resolve}: the new fd,\n"
"or -errno (ENOSYS where the C library has no number for it). Retried on\n"
"EINTR after the signal handlers ran, as os.open is (PEP 475).");

static PyObject *
accel_openat2(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
#if defined(__linux__)
    struct { uint64_t flags, mode, resolve; } how;  /* linux/openat2.h's open_how */
    long dir_fd, ret;
    int err;
    const char *path;

    (void)module;
    if (nargs != 5 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "openat2(dir_fd: int, path: bytes, flags, mode, resolve)");
        return NULL;
    }
    dir_fd = PyLong_AsLong(args[0]);
    how.flags = PyLong_AsUnsignedLongLong(args[2]);
    how.mode = PyLong_AsUnsignedLongLong(args[3]);
    how.resolve = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    path = PyBytes_AS_STRING(args[1]);
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        ret = syscall(437 /* SYS_openat2, the same on every architecture */, (int)dir_fd, path,
                      &how, sizeof how);
        err = errno;
        Py_END_ALLOW_THREADS
        if (ret >= 0 || err != EINTR)
            break;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    return PyLong_FromLong(ret >= 0 ? ret : -err);
#else
    (void)module; (void)args; (void)nargs;
    return PyLong_FromLong(-ENOSYS);
#endif
}

static PyObject *
stat_tuple(const struct stat *st)
{
    /* Times as u64 nanoseconds, wrapping as st_*time_ns & (2**64 - 1) does. */
    unsigned long long v[8] = {
        (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
        (unsigned long long)st->st_mode, (unsigned long long)st->st_nlink,
        (unsigned long long)st->st_size,
        (unsigned long long)st->st_atim.tv_sec * 1000000000ull + (unsigned long long)st->st_atim.tv_nsec,
        (unsigned long long)st->st_mtim.tv_sec * 1000000000ull + (unsigned long long)st->st_mtim.tv_nsec,
        (unsigned long long)st->st_ctim.tv_sec * 1000000000ull + (unsigned long long)st->st_ctim.tv_nsec,
    };
    PyObject *t = PyTuple_New(8), *item;
    int i;
    if (t == NULL)
        return NULL;
    for (i = 0; i < 8; i++) {
        item = PyLong_FromUnsignedLongLong(v[i]);
        if (item == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, item);
    }
    return t;
}

PyDoc_STRVAR(fstatat_doc,
"fstatat(dir_fd, name, follow) -> (dev, ino, mode, nlink, size, atim, mtim, ctim)\n--\n\n"
"fstatat(2) (AT_SYMLINK_NOFOLLOW unless follow) of name (str or bytes, as\n"
"os.stat takes it) in dir_fd; times in nanoseconds, as unsigned 64-bit\n"
"values. Raises OSError as os.stat does.");

static PyObject *
accel_fstatat(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    struct stat st;
    PyObject *name = NULL;
    long dir_fd;
    int follow, r, err;

    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fstatat(dir_fd, name, follow)");
        return NULL;
    }
    dir_fd = PyLong_AsLong(args[0]);
    if (dir_fd == -1 && PyErr_Occurred())
        return NULL;
    follow = PyObject_IsTrue(args[2]);
    if (follow < 0 || !PyUnicode_FSConverter(args[1], &name))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = fstatat((int)dir_fd, PyBytes_AS_STRING(name), &st, follow ? 0 : AT_SYMLINK_NOFOLLOW);
    err = errno;
    Py_END_ALLOW_THREADS
    if (r != 0) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, args[1]);
        Py_DECREF(name);
        return NULL;
    }
    Py_DECREF(name);
    return stat_tuple(&st);
}

static PyMethodDef accel_methods[] = {
    {"setup", accel_setup, METH_O, setup_doc},
    {"new_env", (PyCFunction)(void (*)(void))accel_new_env, METH_FASTCALL, new_env_doc},
    {"openat2", (PyCFunction)(void (*)(void))accel_openat2, METH_FASTCALL, openat2_doc},
    {"fstatat", (PyCFunction)(void (*)(void))accel_fstatat, METH_FASTCALL, fstatat_doc},
    {NULL, NULL, 0, NULL},
};

static int
accel_exec(PyObject *module)
{
    if (PyModule_AddObject(module, "TRAMPOLINE", PyLong_FromVoidPtr((void *)trampoline)) < 0)
        return -1;
    if (PyModule_AddObject(module, "FINALIZER", PyLong_FromVoidPtr((void *)finalize)) < 0)
        return -1;
    str_fd = PyUnicode_InternFromString("fd");
    str_filetype = PyUnicode_InternFromString("filetype");
    str_write_rest = PyUnicode_InternFromString("_write_rest");
    str_rights_base = PyUnicode_InternFromString("rights_base");
    str_rights_inheriting = PyUnicode_InternFromString("rights_inheriting");
    if (str_fd == NULL || str_filetype == NULL || str_write_rest == NULL
            || str_rights_base == NULL || str_rights_inheriting == NULL)
        return -1;
    MemoryCell_Type = (PyTypeObject *)PyType_FromSpec(&cell_spec);
    if (MemoryCell_Type == NULL)
        return -1;
    Py_INCREF(MemoryCell_Type);
    if (PyModule_AddObject(module, "MemoryCell", (PyObject *)MemoryCell_Type) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot accel_slots[] = {
    {Py_mod_exec, accel_exec},
    {0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    "pywasi._accel",
    "The compiled host-call trampoline (see _accel.c).",
    0,
    accel_methods,
    accel_slots,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    return PyModuleDef_Init(&accel_module);
}
