"""Instances and what they export: functions, memories, globals."""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import wasmtime

from .._errors import GuestFault, LimitExceeded, PywasiError, Trap, WasiExit
from .._lean import stack_overflow_hint
from . import _engines, _ffi
from ._module import Module
from ._shared import SharedMemory

__all__ = ["ExitProbe", "Instance", "Exports", "Function", "DeepFunction", "Memory", "WeakMemory",
           "Global", "trap_message"]


class ExitProbe(Protocol):
    """A host bound to an instance that can end the program (the WASI
    object's context): what a failed call means, and the ending that bounds
    a call (``thread_spawn``: ``_threads.ThreadSpawn``)."""

    thread_spawn: Any

    def take_exit(self) -> int | None: ...
    def take_interrupt(self) -> BaseException | None: ...
    def limit_reached(self) -> LimitExceeded | None: ...


class Instance:
    """An instantiated module (``WebAssembly.Instance``)."""

    __slots__ = ("store", "_instance", "exports", "_hosts", "module", "imported_memory", "link",
                 "fuel", "max_memory", "stopped", "fuel_consumed", "_call_fuel")

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance,
                 module: wasmtime.Module | None = None) -> None:
        self.store = store
        self._instance = instance
        self.module = module
        self._hosts: list[ExitProbe] = []
        self.exports = Exports(self)
        # The memory it imports, if any (a threads program imports its shared
        # memory and may not export it), and what it was instantiated from
        # (``instantiate``'s module and complete import object), so that
        # wasi-threads can instantiate it again for each thread.
        self.imported_memory: Memory | SharedMemory | None = None
        self.link: tuple[Module, Mapping[str, Mapping[str, Any]]] | None = None
        # The store-level limits ``instantiate`` was given (a wasi-threads
        # thread's store gets the same).
        self.fuel: int | None = None
        self.max_memory: int | None = None
        # Why the instance refuses calls, once a limit stopped one (None: it
        # does not): its memory and globals are as the guest left them at
        # any instruction, a C function's stack pointer and locks included.
        self.stopped: str | None = None
        # What the last ``call(..., fuel=N)`` used, and that call's N while
        # it runs (the message when it runs out).
        self.fuel_consumed: int | None = None
        self._call_fuel: int | None = None

    @classmethod
    def wrap(cls, store: wasmtime.Store, instance: wasmtime.Instance) -> Instance:
        """Adopt an instance made with the user's own ``wasmtime.Linker``."""
        return cls(store, instance)

    def _attach(self, host: ExitProbe) -> None:
        self._hosts.append(host)

    def call(self, name: str, *args: Any, timeout: float | None = None, fuel: int | None = None,
             cancel: Any = None, max_output: int | None = None) -> Any:
        """Call the exported function ``name`` with ``args``, bounded by its
        own limits; without any, the same as ``exports[name](*args)``.

        ``timeout`` (seconds) and ``cancel`` (a ``pywasi.CancelToken`` or a
        ``threading.Event``): the call is stopped wherever it is, as
        ``wasi.start``'s run is (a module compiled ``interruptible=True``).
        ``fuel``: a fresh budget for this call (a module compiled
        ``consume_fuel=True``; within what ``instantiate(fuel=)`` left);
        ``fuel_consumed`` says what it used. ``max_output``: bytes this call
        may write to stdout and stderr together (the WASI object must count
        them: ``WASI(max_output=)``, its cap for the instance's whole life).
        ``timeout``, ``cancel`` and ``max_output`` need the instance bound
        to a WASI object (``initialize``, ``finalize_bindings``).

        A limit that stops the call raises ``LimitExceeded`` (``.limit``:
        "timeout", "cancelled", "fuel", "output"), and from then on the
        instance refuses every call (``stopped`` says why): the guest was
        abandoned at an arbitrary instruction (mid-malloc, holding a lock,
        its C stack pointer not restored), so its state cannot be trusted;
        make a new instance. Any other trap leaves it callable, as before."""
        func = self.exports.get(name)
        if not isinstance(func, Function):
            raise PywasiError(f"call(): the instance has no exported function named {name!r}")
        if timeout is None and fuel is None and cancel is None and max_output is None:
            return func(*args)
        if self.stopped is not None:
            raise PywasiError(self.stopped)
        host = None
        if timeout is not None or cancel is not None or max_output is not None:
            host = next((h for h in self._hosts if h.thread_spawn is not None), None)
            if host is None:
                raise PywasiError("call(timeout=, cancel=, max_output=) needs the instance bound "
                                  "to a WASI object: wasi.initialize(instance) or "
                                  "wasi.finalize_bindings(instance)")
        if fuel is None:
            assert host is not None  # a timeout, cancel or max_output
            return host.thread_spawn.call(self, func, args, timeout=timeout, cancel=cancel,
                                          max_output=max_output)
        if isinstance(fuel, bool) or not isinstance(fuel, int) or fuel < 0:
            raise ValueError(f"fuel must be a non-negative int, got {fuel!r}")
        if not _engines.has_fuel(self.store.engine):
            raise PywasiError("call(fuel=...) needs a module compiled to count fuel: "
                              "pywasi.compile(..., consume_fuel=True)")
        before = int(self.store.get_fuel())
        budget = min(fuel, before)
        self._call_fuel = fuel if fuel <= before else None  # else the instance's runs out
        self.store.set_fuel(budget)
        try:
            if host is None:
                return func(*args)
            return host.thread_spawn.call(self, func, args, timeout=timeout, cancel=cancel,
                                          max_output=max_output)
        finally:
            used = budget - int(self.store.get_fuel())
            self.fuel_consumed, self._call_fuel = used, None
            self.store.set_fuel(before - used)

    def _refuse_calls(self, limit: LimitExceeded) -> None:
        self.stopped = (f"the instance was stopped by its {limit.limit} limit ({limit}) and "
                        f"refuses further calls: its memory may be half-updated; make a new one")

    def _outcome(self, error: BaseException) -> BaseException:
        """What a failed export call means: an exit, an interrupt the host
        saw, or a trap. Decided from host state, not from which exception
        wasmtime reports (it keeps one global "last exception")."""
        for host in self._hosts:
            interrupt = host.take_interrupt()
            if interrupt is not None:
                return interrupt
        for host in self._hosts:
            code = host.take_exit()
            if code is not None:
                return WasiExit(code)
        if isinstance(error, (wasmtime.Trap, wasmtime.WasmtimeError)):
            for host in self._hosts:
                limit = host.limit_reached()
                if limit is not None:
                    self._refuse_calls(limit)
                    return limit
        if isinstance(error, wasmtime.Trap):
            if error.trap_code is wasmtime.TrapCode.OUT_OF_FUEL:
                fuel = self.fuel if self._call_fuel is None else self._call_fuel
                if fuel is not None:
                    limit = LimitExceeded("fuel", f"fuel of {fuel} used up")
                    self._refuse_calls(limit)
                    return limit
            return Trap(trap_message(error, self.store.engine))
        if isinstance(error, wasmtime.WasmtimeError):
            return Trap(trap_message(error))
        return error


def trap_message(e: BaseException, engine: wasmtime.Engine | None = None) -> str:
    """The trap's report; a stack overflow's also says how to raise the
    limit (``engine``'s wasm stack is the one that ran out)."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, wasmtime.Trap) and e.trap_code is wasmtime.TrapCode.STACK_OVERFLOW:
        size = _engines.wasm_stack(engine) if engine is not None else _engines.DEFAULT_WASM_STACK
        text += stack_overflow_hint(size)
    return text


class Exports(Mapping[str, Any]):
    """The instance's exports by name; also readable as attributes
    (``instance.exports._start()``)."""

    __slots__ = ("_owner", "_cache")

    def __init__(self, owner: Instance) -> None:
        self._owner = owner
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            pass
        owner = self._owner
        raw = owner._instance.exports(owner.store).get(name)
        if raw is None:
            raise KeyError(name)
        value = _wrap_extern(owner, raw)
        self._cache[name] = value
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the instance has no export named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        owner = self._owner
        return iter([name for name, _ in owner._instance.exports(owner.store).items()])

    def __len__(self) -> int:
        owner = self._owner
        return len(owner._instance.exports(owner.store))


def _wrap_extern(owner: Instance, raw: Any) -> Any:
    if isinstance(raw, wasmtime.Func):
        stack = _engines.wasm_stack(owner.store.engine)
        if stack > _engines.DEFAULT_WASM_STACK:
            return DeepFunction(owner, raw, stack)
        return Function(owner, raw)
    if isinstance(raw, wasmtime.Memory):
        return Memory(owner.store, raw)
    if isinstance(raw, wasmtime.Global):
        return Global(owner.store, raw)
    if isinstance(raw, wasmtime.SharedMemory):
        return SharedMemory(raw)
    return raw


class Function:
    """An exported function, called with Python numbers."""

    __slots__ = ("_owner", "_func", "__weakref__")

    def __init__(self, owner: Instance, func: wasmtime.Func) -> None:
        self._owner = owner
        self._func = func

    def __call__(self, *args: Any) -> Any:
        if self._owner.stopped is not None:
            raise PywasiError(self._owner.stopped)
        try:
            return self._func(self._owner.store, *args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            raise self._owner._outcome(e) from None
        except BaseException as e:
            # The public route (or a user's import) raised through wasmtime-py.
            outcome = self._owner._outcome(e)
            if outcome is e:
                raise
            raise outcome from None

    @property
    def wasmtime_func(self) -> wasmtime.Func:
        return self._func


class DeepFunction(Function):
    """An export of a module compiled with a wasm stack larger than the
    default: each call runs where the native stack holds it (``_stack``)."""

    __slots__ = ("_stack",)

    def __init__(self, owner: Instance, func: wasmtime.Func, stack: int) -> None:
        super().__init__(owner, func)
        self._stack = stack

    def __call__(self, *args: Any) -> Any:
        from ._stack import call   # not on the default stack's path
        return call(self._stack, super().__call__, *args)


class Memory:
    """An exported memory: ``buffer`` is a memoryview over it (re-read it after
    ``grow``), ``size`` is in 64 KiB pages."""

    __slots__ = ("_store", "_memory")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self._store = store
        self._memory = memory

    @property
    def buffer(self) -> memoryview:
        address, length = self.locate()
        if not length:
            return memoryview(bytearray(0))
        return memoryview((ctypes.c_char * length).from_address(address)).cast("B")

    @property
    def size(self) -> int:
        return int(self._memory.size(self._store))

    def grow(self, pages: int) -> int:
        return int(self._memory.grow(self._store, pages))

    def locate(self) -> tuple[int, int]:
        """(address, byte length) of the memory right now."""
        return _locate(self._store, self._memory)

    @property
    def stable(self) -> bool:
        """True when the memory's base cannot move as it grows (our engines)."""
        return _engines.settings_of(self._store.engine) is not None

    @property
    def wasmtime_memory(self) -> wasmtime.Memory:
        return self._memory


def _locate(store: wasmtime.Store, memory: wasmtime.Memory) -> tuple[int, int]:
    if _ffi.memory_data is None or _ffi.memory_data_size is None:
        # The public calls (a few µs more: they build a ctypes pointer).
        address = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
        return int(address or 0), int(memory.data_len(store))
    ctx = ctypes.cast(store._context(), ctypes.c_void_p)
    ref = ctypes.cast(ctypes.byref(memory._memory), ctypes.c_void_p)
    return int(_ffi.memory_data(ctx, ref) or 0), int(_ffi.memory_data_size(ctx, ref))


class WeakMemory:
    """``memory``'s ``locate``, for a host that the memory's own store keeps
    alive: WASI's context (wasmtime holds the syscalls, and through them the
    context, until the store is deleted). It refers to the store weakly: a
    strong reference would close a cycle through C that no collector sees,
    and the store with its linear memory would never be freed. Once the store
    is gone, ``on_gone`` is called (the host must drop its views of the
    memory: their bytes are unmapped) and ``locate`` raises ``GuestFault``."""

    __slots__ = ("_store", "_memory")

    def __init__(self, memory: Memory, on_gone: Callable[[], None]) -> None:
        self._store = weakref.ref(memory._store, lambda _: on_gone())
        self._memory = memory._memory

    def locate(self) -> tuple[int, int]:
        store = self._store()
        if store is None:
            raise GuestFault("the memory WASI is bound to is gone (its instance's store was freed)")
        return _locate(store, self._memory)


class Global:
    """An exported global; ``value`` reads and (if mutable) writes it."""

    __slots__ = ("_store", "_global")

    def __init__(self, store: wasmtime.Store, glob: wasmtime.Global) -> None:
        self._store = store
        self._global = glob

    @property
    def value(self) -> Any:
        return self._global.value(self._store)

    @value.setter
    def value(self, v: Any) -> None:
        self._global.set_value(self._store, v)

