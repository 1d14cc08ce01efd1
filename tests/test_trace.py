"""The syscall trace (docs/trace.md): events through the API (a callable, a
file, JSON lines), the filter, every host-call route traced (the compiled
accelerator's fast paths included), the exit and trap lines, and the
command's --trace to stderr (in order with the guest's own stderr) and to a
file, and a wasi-threads program's lines, each naming its thread. The
decoding of every function, one golden line each, is in
test_trace_golden.py."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

import pytest

import pywasi
from helpers import wat_calling
from wasmbuild import build_c, build_wat

FD_WRITE = '(import "$ns" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
PATH_OPEN = ('(import "$ns" "path_open" (func $path_open '
             '(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))')
PROC_EXIT = '(import "$ns" "proc_exit" (func $proc_exit (param i32)))'
# iovec at 8 -> "out\n" at 16; iovec at 24 -> "err\n" at 32; "missing" at 48.
DATA = r'''(data (i32.const 8) "\10\00\00\00\04\00\00\00")
  (data (i32.const 16) "out\n")
  (data (i32.const 24) "\20\00\00\00\04\00\00\00")
  (data (i32.const 32) "err\n")
  (data (i32.const 48) "missing")'''
BODY = '''
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 100)))
    (drop (call $fd_write (i32.const 2) (i32.const 24) (i32.const 1) (i32.const 100)))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 48) (i32.const 7)
                           (i32.const 0) (i64.const 0x42) (i64.const 0) (i32.const 0) (i32.const 104)))
    (drop (call $fd_write (i32.const 2) (i32.const 24) (i32.const 1) (i32.const 100)))
    (call $proc_exit (i32.const 3))'''
PROGRAM = wat_calling("\n  ".join([FD_WRITE, PATH_OPEN, PROC_EXIT]), BODY, data=DATA)

EXPECTED = [
    'fd_write(1, [4]) = SUCCESS nwritten=4',
    'fd_write(2, [4]) = SUCCESS nwritten=4',
    'path_open(3, 0, "missing", 0, FD_READ|FD_WRITE, 0, 0) = NOENT',
    'fd_write(2, [4]) = SUCCESS nwritten=4',
    'proc_exit(3) = ?',
    '+++ exited with 3 +++',
]
DURATION = re.compile(r" <\d+\.\d{6}>$")


def untimed(line: str) -> str:
    assert not line.startswith(("fd_", "path_", "proc_")) or DURATION.search(line), line
    return DURATION.sub("", line)


def run(trace: Any, program: bytes = PROGRAM, tmp: Any = None, **kw: Any) -> tuple[int, Any]:
    out: list[bytes] = []
    kw.setdefault("stdout", out.append)
    kw.setdefault("stderr", out.append)
    wasi = pywasi.WASI(version="preview1", preopens={"/": str(tmp)} if tmp else {}, trace=trace,
                       **kw)
    instance = pywasi.instantiate(pywasi.compile(program), wasi.get_import_object())
    return wasi.start(instance), out


def test_events_to_a_callable(tmp_path: Any) -> None:
    events: list[pywasi.TraceEvent] = []
    code, out = run(events.append, tmp=tmp_path)
    assert code == 3 and out == [b"out\n", b"err\n", b"err\n"]
    assert [untimed(e.text()) for e in events] == EXPECTED
    write = events[0]
    assert (write.kind, write.name, write.args, write.errno, write.results) == \
        ("call", "fd_write", {"fd": 1, "iovs": [4]}, "SUCCESS", {"nwritten": 4})
    assert write.raw == (1, 8, 1, 100) and write.thread is None and write.duration >= 0
    opened = events[2]
    assert opened.args["path"] == b"missing" and opened.args["fs_rights_base"] == "FD_READ|FD_WRITE"
    assert opened.errno == "NOENT" and opened.results == {}
    assert (events[4].errno, events[5].kind, events[5].results) == (None, "exit", {"code": 3})


@pytest.mark.parametrize("stream", [io.StringIO, io.BytesIO])
def test_lines_to_a_file_object(tmp_path: Any, stream: Any) -> None:
    f = stream()
    run(f, tmp=tmp_path)
    text = f.getvalue() if isinstance(f, io.StringIO) else f.getvalue().decode()
    assert [untimed(line) for line in text.splitlines()] == EXPECTED


def test_json_lines(tmp_path: Any) -> None:
    f = io.StringIO()
    run(pywasi.Trace(f, format="json"), tmp=tmp_path)
    lines = [json.loads(line) for line in f.getvalue().splitlines()]
    assert lines[0] == {"call": "fd_write", "args": {"fd": 1, "iovs": [4]}, "errno": "SUCCESS",
                        "results": {"nwritten": 4}, "duration": lines[0]["duration"]}
    assert isinstance(lines[0]["duration"], float)
    assert lines[2]["args"] == {"fd": 3, "dirflags": "0", "path": "missing", "oflags": "0",
                                "fs_rights_base": "FD_READ|FD_WRITE", "fs_rights_inheriting": "0",
                                "fdflags": "0"}
    assert lines[2]["errno"] == "NOENT" and "results" not in lines[2]
    assert lines[4]["call"] == "proc_exit" and lines[4]["errno"] is None
    assert lines[5] == {"exit": 3}


def test_filter_selects_calls(tmp_path: Any) -> None:
    events: list[pywasi.TraceEvent] = []
    run(pywasi.Trace(events.append, calls="path_*,proc_exit"), tmp=tmp_path)
    assert [e.name for e in events] == ["path_open", "proc_exit", "exit"]
    events.clear()
    run(pywasi.Trace(events.append, calls=["fd_w*"]), tmp=tmp_path)
    assert [e.name for e in events] == ["fd_write"] * 3 + ["exit"]


def test_bad_trace_options() -> None:
    with pytest.raises(ValueError, match="'fd_wrte' matches no WASI function"):
        pywasi.Trace(print, calls="fd_read,fd_wrte")
    with pytest.raises(ValueError, match="no function names"):
        pywasi.Trace(print, calls=" , ")
    with pytest.raises(ValueError, match="'text' or 'json'"):
        pywasi.Trace(print, format="xml")
    with pytest.raises(TypeError, match="trace must be a callable, a file object"):
        pywasi.WASI(version="preview1", trace=42)
    with pytest.raises(TypeError, match="must be strings"):
        pywasi.Trace(print, calls=["fd_read", 3])  # type: ignore[list-item]


def test_the_trace_is_not_the_guests_stderr(tmp_path: Any) -> None:
    """A trace goes to its own sink: the guest's stderr (and its output
    limit) never sees it."""
    err: list[bytes] = []
    f = io.StringIO()
    run(f, tmp=tmp_path, stderr=err.append, max_output=12)
    assert err == [b"err\n", b"err\n"]
    assert len(f.getvalue().splitlines()) == len(EXPECTED)


def test_a_trap_ends_with_a_trap_line() -> None:
    body = '''(drop (call $fd_write (i32.const 1) (i32.const 0xfffffff0) (i32.const 1) (i32.const 100)))'''
    events: list[pywasi.TraceEvent] = []
    with pytest.raises(pywasi.Trap):
        run(events.append, wat_calling(FD_WRITE, body))
    call, end = events
    assert call.args == {"fd": 1, "iovs": pywasi._trace.Pointer(0xfffffff0)}
    assert untimed(call.text()).startswith("fd_write(1, 0xfffffff0) = ? (trap: out of bounds")
    assert end.kind == "trap" and "out of bounds memory access" in (end.detail or "")
    assert end.text().startswith("+++ trapped: fd_write: out of bounds") and end.text().endswith("+++")


@pytest.mark.parametrize("route", ["accel", "ctypes"])
def test_every_route_is_traced(route: str, monkeypatch: Any) -> None:
    """The compiled trampoline's C fast paths (fd_write among them) step
    aside when tracing: every call is seen, the output is the same."""
    from pywasi._engine import _hostcall
    if route == "accel" and _hostcall.ACCEL is None:
        pytest.fail("the accelerator is not built (CI builds it)")
    if route == "ctypes":
        monkeypatch.setattr(_hostcall, "ACCEL", None)
    events: list[pywasi.TraceEvent] = []
    code, out = run(events.append, build_c("hello"))
    assert code == 0 and b"".join(out) == b"hello from C\n"
    writes = [e for e in events if e.name == "fd_write"]
    assert [(w.args["fd"], w.errno, w.results["nwritten"]) for w in writes] == [(1, "SUCCESS", 13)]
    assert events[-1].text() == "+++ exited with 0 +++"


def test_the_public_route_is_traced() -> None:
    f = io.StringIO()
    wasi = pywasi.WASI(version="preview1", trace=f)
    assert wasi.wasi_import["fd_close"](77) == 8  # BADF
    assert wasi.wasi_import["sched_yield"]() == 0
    assert [untimed(line) for line in f.getvalue().splitlines()] == [
        "fd_close(77) = BADF", "sched_yield() = SUCCESS"]


# -- the command --------------------------------------------------------------

def pywasi_cmd(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", "run", *args], capture_output=True,
                          timeout=120)


def wat_file(tmp_path: Any, program: bytes = PROGRAM) -> str:
    path = tmp_path / "prog.wasm"
    path.write_bytes(build_wat(program.decode()))
    return str(path)


def test_cli_trace_to_stderr_in_order_with_the_guests_stderr(tmp_path: Any) -> None:
    proc = pywasi_cmd("--trace", "--dir", f"{tmp_path}::/", wat_file(tmp_path))
    assert proc.returncode == 3
    assert proc.stdout == b"out\n"  # nothing of the trace on stdout
    lines = [untimed(line) for line in proc.stderr.decode().splitlines()]
    # The guest's write comes out before its call's line (the line says how it ended).
    assert lines == [EXPECTED[0], "err", EXPECTED[1], EXPECTED[2], "err", *EXPECTED[3:]]


def test_cli_trace_to_a_file_as_json_filtered(tmp_path: Any) -> None:
    out = tmp_path / "trace.jsonl"
    proc = pywasi_cmd(f"--trace={out}", "--trace-format=json", "--trace-filter=path_open",
                      "--dir", f"{tmp_path}::/", wat_file(tmp_path))
    assert proc.returncode == 3 and proc.stdout == b"out\n" and proc.stderr == b"err\nerr\n"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line.get("call") for line in lines] == ["path_open", None]
    assert lines[0]["errno"] == "NOENT" and lines[1] == {"exit": 3}


def test_cli_trace_filter_alone_traces_to_stderr(tmp_path: Any) -> None:
    proc = pywasi_cmd("--trace-filter", "proc_*", wat_file(tmp_path))
    assert [untimed(line) for line in proc.stderr.decode().splitlines()] == \
        ["err", "err", "proc_exit(3) = ?", "+++ exited with 3 +++"]


@pytest.mark.parametrize("flags,words", [
    (["--trace-filter=fd_wirte"], "--trace-filter: trace calls: 'fd_wirte' matches no WASI function"),
    (["--trace-format=xml"], "--trace-format 'xml': expected text or json"),
    (["--trace="], "--trace= needs a FILE"),
    (["--trace=/nonexistent-dir/t.txt"], "cannot write the trace to '/nonexistent-dir/t.txt'"),
])
def test_cli_bad_trace_flags(tmp_path: Any, flags: list[str], words: str) -> None:
    proc = pywasi_cmd(*flags, wat_file(tmp_path))
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"Traceback" not in proc.stderr and words.encode() in proc.stderr, proc.stderr


# -- wasi-threads ------------------------------------------------------------

def test_tracing_with_threads_names_each_caller() -> None:
    # Main spawns two threads (tids 1 and 2, in spawn order); each writes
    # "t<arg>\n" and counts itself done; main waits for both, writes, exits.
    from test_threads import program  # the shared-memory prelude of the threads tests

    thread_body = """(local $base i32)
      (local.set $base (i32.add (i32.const 5000) (i32.mul (local.get $arg) (i32.const 32))))
      (i32.store (local.get $base) (i32.add (local.get $base) (i32.const 16)))
      (i32.store offset=4 (local.get $base) (i32.const 3))
      (i32.store8 offset=16 (local.get $base) (i32.const 116))
      (i32.store8 offset=17 (local.get $base) (i32.add (i32.const 48) (local.get $arg)))
      (i32.store8 offset=18 (local.get $base) (i32.const 10))
      (drop (call $fd_write (i32.const 1) (local.get $base) (i32.const 1)
                            (i32.add (local.get $base) (i32.const 8))))
      (drop (i32.atomic.rmw.add (i32.const 4) (i32.const 1)))
      (drop (memory.atomic.notify (i32.const 4) (i32.const 1)))"""
    main_body = """(drop (call $spawn (i32.const 1)))
      (drop (call $spawn (i32.const 2)))
      (loop $w
        (if (i32.lt_u (i32.atomic.load (i32.const 4)) (i32.const 2)) (then
          (drop (memory.atomic.wait32 (i32.const 4) (i32.atomic.load (i32.const 4))
                                      (i64.const 100000000)))
          (br $w))))
      (i32.store (i32.const 720) (i32.const 4096))
      (i32.store (i32.const 724) (i32.const 5))
      (i32.store (i32.const 4096) (i32.const 0x6e69616d))
      (i32.store8 (i32.const 4100) (i32.const 10))
      (drop (call $fd_write (i32.const 1) (i32.const 720) (i32.const 1) (i32.const 728)))
      (call $proc_exit (i32.const 0))"""
    lines = io.StringIO()
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append, trace=lines)
    module = pywasi.compile(build_wat(program(main_body, thread_body).decode()), interruptible=True)
    assert wasi.start(pywasi.instantiate(module, wasi.get_import_object()), timeout=60) == 0
    assert sorted(out) == [b"main\n", b"t1\n", b"t2\n"]
    traced = [DURATION.sub("", line) for line in lines.getvalue().splitlines()]
    # The threads' lines come in either order, each whole; main's are last.
    assert sorted(traced[:2]) == ["[tid 1] fd_write(1, [3]) = SUCCESS nwritten=3",
                                  "[tid 2] fd_write(1, [3]) = SUCCESS nwritten=3"]
    assert traced[2:] == ["[tid 0] fd_write(1, [5]) = SUCCESS nwritten=5",
                          "[tid 0] proc_exit(0) = ?", "[tid 0] +++ exited with 0 +++"]
