;; A wasi-threads program (docs/threads.md): _start spawns a thread, which
;; writes "hello from a thread\n" and flags it is done; _start waits for the
;; flag (memory.atomic.wait32) and exits 0. `pywasi run examples/threads.wat`
(module
  (import "env" "memory" (memory 1 1 shared))
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (data (i32.const 64) "hello from a thread\n")

  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.store (i32.const 16) (i32.const 64))   ;; iovec: the text
    (i32.store (i32.const 20) (i32.const 20))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.atomic.store (i32.const 0) (i32.const 1))   ;; done
    (drop (memory.atomic.notify (i32.const 0) (i32.const 1))))

  (func (export "_start")
    (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 1))
      (then (call $proc_exit (i32.const 1))))
    (loop $wait
      (if (i32.eqz (i32.atomic.load (i32.const 0)))
        (then
          (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
          (br $wait))))))
