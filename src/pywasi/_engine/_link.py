"""``instantiate``: a module linked with an import object, in the store it
belongs in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import wasmtime

from .._errors import LimitExceeded, PywasiError, Trap
from . import _engines
from ._hostcall import define_raw
from ._instance import Function, Global, Instance, Memory, trap_message
from ._module import Import, Module, first_line, function_text, kind
from ._shared import SharedMemory, capped
from ._stores import new_store, set_limits

__all__ = ["LinkError", "instantiate"]


class LinkError(PywasiError):
    """An import the module needs is missing or of the wrong kind or type."""


def instantiate(module: Module, import_object: Mapping[str, Mapping[str, Any]] | None = None,
                *, store: wasmtime.Store | None = None, fuel: int | None = None,
                max_memory: int | None = None) -> Instance:
    """Instantiate ``module`` with ``import_object`` (``{module: {name: value}}``).

    A value may be one of WASI's host functions, a plain Python callable (its
    wasm type is the import's), an export of another instance (``Function``,
    ``Memory``, ``Global``: the new instance then joins that instance's store,
    as JavaScript instances share one agent) or, with ``store=`` given, a
    wasmtime extern of that store.

    Store-level limits (they apply to the instance's store, for every
    instance in it): ``fuel``, wasmtime's instruction budget (a module
    compiled with ``consume_fuel=True``; the guest traps when it is used
    up); ``max_memory``, the bytes each linear memory may reach (wasmtime's
    store limiter: ``memory.grow`` past it answers -1, so the guest's malloc
    gets NULL; a shared memory made here gets it as its maximum).
    """
    if not isinstance(module, Module):
        raise TypeError(f"instantiate() takes a Module from pywasi.compile(), not {type(module).__name__}")
    _check_limit("fuel", fuel, 0)
    _check_limit("max_memory", max_memory, 1)
    if fuel is not None and not module.consume_fuel:
        raise ValueError("instantiate(fuel=...) needs a module compiled to count fuel: "
                         "pywasi.compile(..., consume_fuel=True)")
    import_object = import_object or {}
    engine = module.engine
    explicit = store is not None
    store = _choose_store(module, import_object, store)
    if fuel is not None or max_memory is not None:
        set_limits(store, fuel=fuel, max_memory=max_memory)
    linker = wasmtime.Linker(engine)
    hosts: list[Any] = []
    # wasi-threads: `wasi`.`thread-spawn`, if the import object lacks it, is
    # its WASI's (``HostState.thread_spawn``); with it, a shared memory the
    # module imports and the import object lacks is made here, to the
    # module's declared type, as wasmtime's CLI does.
    spawner = _thread_spawn_of(import_object)
    threads = spawner is not None
    complete: dict[str, dict[str, Any]] = {ns: dict(values) for ns, values in import_object.items()}
    memory: Memory | SharedMemory | None = None
    # A module may import one name more than once (AssemblyScript emits
    # fd_write twice): a linker holds one definition per name, which serves
    # every entry of the same type; two types cannot share one.
    linked: dict[tuple[str, str], str] = {}
    for imp in module.import_entries:
        name = imp.name
        where = f"{imp.module}.{name}"
        first = linked.get((imp.module, name))
        if first is not None:
            if first != imp.text:
                raise LinkError(f"import {where}: imported twice with different types "
                                f"({first}, then {imp.text})")
            continue
        linked[(imp.module, name)] = imp.text
        namespace = import_object.get(imp.module)
        value = None if namespace is None else namespace.get(name)
        if threads and (imp.module, name) == ("wasi", "thread-spawn") and \
                (value is None or value is spawner):
            if imp.text != _THREAD_SPAWN:  # wasi-threads: (start_arg) -> tid
                raise LinkError(f"import {where}: the module imports {imp.text}, "
                                f"wasi-threads' thread-spawn is {_THREAD_SPAWN}")
            value = spawner
            complete.setdefault(imp.module, {})[name] = value
        if value is None and threads and isinstance(imp.type, wasmtime.MemoryType) \
                and imp.type.is_shared:
            value = SharedMemory(wasmtime.SharedMemory(engine, capped(imp.type, max_memory)), engine)
            complete.setdefault(imp.module, {})[name] = value
        if value is None:
            if namespace is None:
                raise LinkError(f"import {where}: the import object has no module {imp.module!r}")
            raise LinkError(f"import {where}: not provided by the import object")
        if isinstance(value, wasmtime.SharedMemory):
            value = SharedMemory(value)
        if isinstance(value, (Memory, SharedMemory)):
            memory = value
        _define_import(store, linker, imp, where, value, hosts, explicit)
    try:
        # The module's start function, if any, runs here: with a large wasm
        # stack, where the native stack holds it.
        stack = _engines.wasm_stack(engine)
        if stack <= _engines.DEFAULT_WASM_STACK:
            raw = linker.instantiate(store, module._module)
        else:
            from ._stack import call
            raw = call(stack, linker.instantiate, store, module._module)
    except wasmtime.Trap as e:
        raise Trap(trap_message(e, engine)) from None
    except wasmtime.WasmtimeError as e:
        if max_memory is not None and "exceeds memory limits" in str(e):
            raise LimitExceeded("memory", f"memory limit of {max_memory} bytes: "
                                          f"{first_line(e)}") from None
        raise LinkError(first_line(e)) from None
    instance = Instance(store, raw, module._module)
    instance.imported_memory = memory
    instance.fuel, instance.max_memory = fuel, max_memory
    instance.link = (module, complete)
    for host in hosts:
        instance._attach(host)
        if hasattr(host, "bind_memory"):   # with_memory functions: the memory is known now
            exported = instance.exports.get("memory")
            host.bind_memory(exported if isinstance(exported, (Memory, SharedMemory)) else memory)
    return instance


_THREAD_SPAWN = function_text(["i32"], ["i32"])


def _check_limit(name: str, value: Any, least: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")


def _thread_spawn_of(import_object: Mapping[str, Mapping[str, Any]]) -> Any:
    given = import_object.get("wasi", {}).get("thread-spawn")
    if given is not None:
        return given
    for namespace in import_object.values():
        for value in namespace.values():
            host = getattr(value, "wasi_host", None)
            if host is not None:
                return getattr(host, "thread_spawn", None)
            break
    return None


def _store_of(value: Any) -> wasmtime.Store | None:
    if isinstance(value, Function):
        return value._owner.store
    if isinstance(value, (Memory, Global)):
        return value._store
    return None


def _choose_store(module: Module, import_object: Mapping[str, Mapping[str, Any]],
                  given: wasmtime.Store | None) -> wasmtime.Store:
    """The store the new instance lives in. Wasm objects cannot cross stores
    (wasmtime aborts the process if they do), so an instance that imports
    another instance's exports joins that instance's store, and mixing two
    stores is refused here instead."""
    stores = {id(s): s for ns in import_object.values() if isinstance(ns, Mapping)
              for s in map(_store_of, ns.values()) if s is not None}
    if given is not None:
        stores.setdefault(id(given), given)
    if len(stores) > 1:
        raise LinkError("the import object holds exports of instances in different stores; "
                        "wasm objects cannot cross stores")
    if stores:
        store = next(iter(stores.values()))
        if store.engine is not module.engine:
            raise LinkError("the imported exports belong to another engine than the module")
        return store
    return new_store(module.engine)


def _define_import(store: wasmtime.Store, linker: wasmtime.Linker, imp: Import, where: str,
                   value: Any, hosts: list[Any], explicit_store: bool) -> None:
    ty = imp.type
    host_of = getattr(value, "wasi_host", None)
    if host_of is not None and hasattr(value, "raw_callback"):
        if not isinstance(ty, wasmtime.FuncType):
            raise LinkError(f"import {where}: the module imports a {kind(ty)}, not a function")
        if imp.text != function_text(value.params, value.results):
            want = ([str(p) for p in ty.params], [str(r) for r in ty.results])
            have = (list(value.params), list(value.results))
            raise LinkError(f"import {where}: the module expects {want[0]} -> {want[1]}, "
                            f"WASI's {value.name} is {have[0]} -> {have[1]}")
        define_raw(linker, imp.module, value)
        if host_of not in hosts:
            hosts.append(host_of)
        return
    if isinstance(value, SharedMemory):
        # A shared memory belongs to the engine, not to a store.
        if not isinstance(ty, wasmtime.MemoryType):
            raise LinkError(f"import {where}: the module imports a {kind(ty)}, not a memory")
        try:
            value.define(linker, store, imp.module, imp.name)
        except wasmtime.WasmtimeError as e:
            raise LinkError(f"import {where}: {first_line(e)}") from None
        return
    wrapped = _store_of(value) is not None  # our export wrappers: store already chosen
    if isinstance(value, Function):
        value = value.wasmtime_func
    elif isinstance(value, Memory):
        value = value.wasmtime_memory
    elif isinstance(value, Global):
        value = value._global
    if isinstance(value, (wasmtime.Func, wasmtime.Memory, wasmtime.Global, wasmtime.Table)):
        if not (explicit_store or wrapped):
            raise LinkError(f"import {where}: a raw wasmtime {type(value).__name__} can only be "
                            f"imported with instantiate(..., store=<its store>)")
        try:
            linker.define(store, imp.module, imp.name, value)
        except wasmtime.WasmtimeError as e:
            raise LinkError(f"import {where}: {first_line(e)}") from None
        return
    if callable(value):
        if not isinstance(ty, wasmtime.FuncType):
            raise LinkError(f"import {where}: the module imports a {kind(ty)}, "
                            f"a Python callable can only be a function")
        if getattr(value, "_pywasi_with_memory", False):
            from ._withmemory import MemoryImports
            imports = next((h for h in hosts if isinstance(h, MemoryImports)), None)
            if imports is None:
                imports = MemoryImports()
                hosts.append(imports)
            imports.define(linker, imp.module, imp.name, ty, value)
            return
        linker.define_func(imp.module, imp.name, ty, value)
        return
    raise LinkError(f"import {where}: cannot import a {type(value).__name__}")

