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
 * Two calls have their hot case done here (fast_clock_time_get,
 * fast_fd_write), only where the bounds and alignment checks the Python
 * syscall makes are sure to pass (fd_write's fd and rights check is the fd
 * table's own get()); anything else goes to the Python syscall, so results,
 * errno values and trap messages stay the Python code's.
 *
 * It does not link against libwasmtime: the one wasmtime function it calls,
 * wasmtime_trap_new, is handed over as an address by setup() (_engine takes
 * it from wasmtime-py's loaded library with ctypes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
 * anything else is left to the Python syscall, which checks it and traps. */
typedef struct {
    PyObject_HEAD
    unsigned char *base;
    uint64_t size;
} MemoryCell;

static PyTypeObject *MemoryCell_Type;

/* Calls the C side answers itself in their hottest case (see fast_path). */
enum { FAST_NONE = 0, FAST_CLOCK_TIME_GET = 1, FAST_FD_WRITE = 2 };

/* The per-function env: owned by wasmtime, freed by finalize(). */
typedef struct {
    PyObject *impl;     /* the syscall: impl(*unsigned_args) -> None */
    PyObject *outcome;  /* outcome(exc) -> int errno | str trap message */
    MemoryCell *cell;   /* with a fast path: the memory it may write */
    int fast;
    /* fd_write's: FdTable.get, the descriptor class whose write() this
     * mirrors (HostStream), the FD_WRITE right (see FdCalls.fd_write_accel) */
    PyObject *fds_get, *stream_type, *write_right;
    Py_ssize_t nparams;
    int has_result;
    unsigned char kinds[MAX_PARAMS];
} host_env;

static void *failed(host_env *env, val_raw *args);
static PyObject *str_fd, *str_write_rest;

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

/* fd_write(fd, iovs, iovs_len, nwritten_ptr) of one in-bounds iovec to a
 * HostStream: what fd.py's fd_write and HostStream.write do (the fd table's
 * get() checks the fd and its rights, one write(2) without the GIL, the rest
 * of a short write through the stream's own _write_rest). Called with the
 * GIL. Returns 0 if it answered (*trap set on an error that traps), -1 to
 * leave the call to Python: taken only before any byte is written. */
static int
fast_fd_write(host_env *env, val_raw *args, void **trap)
{
    uint32_t iovs = (uint32_t)args[1].i32, iovs_len = (uint32_t)args[2].i32;
    uint32_t nwritten_ptr = (uint32_t)args[3].i32, buf, len;
    MemoryCell *cell = env->cell;
    PyObject *fd_args[3], *desc, *fd_obj, *rest;
    long fd;
    Py_ssize_t n;
    uint32_t written;

    if (iovs_len != 1 || (iovs & 3) || (uint64_t)iovs + 8 > cell->size
            || (nwritten_ptr & 3) || (uint64_t)nwritten_ptr + 4 > cell->size)
        return -1;
    memcpy(&buf, cell->base + iovs, 4);
    memcpy(&len, cell->base + iovs + 4, 4);
    if ((uint64_t)buf + len > cell->size)
        return -1;

    fd_args[1] = PyLong_FromUnsignedLong((uint32_t)args[0].i32);
    if (fd_args[1] == NULL) {
        PyErr_Clear();
        return -1;
    }
    fd_args[2] = env->write_right;
    desc = PyObject_Vectorcall(env->fds_get, fd_args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(fd_args[1]);
    if (desc == NULL) {  /* BADF, NOTCAPABLE: as the Python syscall's first step */
        *trap = failed(env, args);
        return 0;
    }
    if (Py_TYPE(desc) != (PyTypeObject *)env->stream_type) {
        Py_DECREF(desc);
        return -1;
    }
    fd_obj = PyObject_GetAttr(desc, str_fd);
    fd = fd_obj != NULL ? PyLong_AsLong(fd_obj) : -1;
    Py_XDECREF(fd_obj);
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Clear();
        Py_DECREF(desc);
        return -1;
    }
    /* os.write releases the GIL around write(2); so does this. */
    Py_BEGIN_ALLOW_THREADS
    n = write((int)fd, cell->base + buf, len);
    Py_END_ALLOW_THREADS
    if (n < 0) {  /* nothing written: Python redoes the call and raises */
        Py_DECREF(desc);
        return -1;
    }
    written = (uint32_t)n;
    if (written < len) {
        PyObject *view = PyMemoryView_FromMemory((char *)cell->base + buf + written,
                                                 (Py_ssize_t)(len - written), PyBUF_READ);
        rest = view != NULL ? PyObject_CallMethodOneArg(desc, str_write_rest, view) : NULL;
        Py_XDECREF(view);
        written += rest != NULL ? (uint32_t)PyLong_AsUnsignedLong(rest) : 0;
        Py_XDECREF(rest);
        if (PyErr_Occurred()) {
            Py_DECREF(desc);
            *trap = failed(env, args);
            return 0;
        }
    }
    Py_DECREF(desc);
    memcpy(cell->base + nwritten_ptr, &written, 4);
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
    if (env->fast == FAST_FD_WRITE && fast_fd_write(env, args, &trap) == 0) {
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
        Py_XDECREF(env->stream_type);
        Py_XDECREF(env->write_right);
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
"extra is what that path needs from Python (fd_write: see fast_fd_write).\n"
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
        PyObject *name, *cell, *extra, *fds_get, *stream_type, *write_right;
        if (!PyArg_ParseTuple(args[4], "UO!O", &name, MemoryCell_Type, &cell, &extra)) {
            free(env);
            return NULL;
        }
#if !PY_BIG_ENDIAN  /* the fast paths copy little-endian wasm values as host ints */
        if (PyUnicode_CompareWithASCIIString(name, "clock_time_get") == 0 && n == 3 && has_result)
            env->fast = FAST_CLOCK_TIME_GET;
        if (PyUnicode_CompareWithASCIIString(name, "fd_write") == 0 && n == 4 && has_result
                && PyTuple_Check(extra)
                && PyArg_ParseTuple(extra, "OO!O", &fds_get, &PyType_Type, &stream_type, &write_right)) {
            env->fast = FAST_FD_WRITE;
            Py_INCREF(fds_get);
            env->fds_get = fds_get;
            Py_INCREF(stream_type);
            env->stream_type = stream_type;
            Py_INCREF(write_right);
            env->write_right = write_right;
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

static PyType_Slot cell_slots[] = {
    {Py_tp_doc, "The bound memory's base and size, for the C fast paths."},
    {Py_tp_methods, cell_methods},
    {0, NULL},
};

static PyType_Spec cell_spec = {
    "pywasi._accel.MemoryCell", sizeof(MemoryCell), 0, Py_TPFLAGS_DEFAULT, cell_slots,
};

static PyMethodDef accel_methods[] = {
    {"setup", accel_setup, METH_O, setup_doc},
    {"new_env", (PyCFunction)(void (*)(void))accel_new_env, METH_FASTCALL, new_env_doc},
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
    str_write_rest = PyUnicode_InternFromString("_write_rest");
    if (str_fd == NULL || str_write_rest == NULL)
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
