// Run one wasm module under node:wasi, for differential tests against pywasi.
//
// Usage: node --no-warnings node_runner.mjs CONFIG.json
//
// CONFIG is JSON: {"wasm": path, "args": [...], "env": {...},
//                  "preopens": {guest: host}, "version": "preview1" | "unstable"}
//
// stdout and stderr belong to the guest: this script writes nothing to stdout,
// and to stderr only when the guest traps or the config is unusable.
// stdin is the guest's fd 0 (node:wasi's default).
//
// Exit status: the guest's exit code (returnOnExit), or
//   134 if the guest trapped (the number wasmtime's CLI uses, 128 + SIGABRT),
//   2   if the config or module could not be loaded.
// --no-warnings is required on node's command line: node:wasi prints an
// ExperimentalWarning otherwise.

import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

const TRAP_EXIT = 134;
const SETUP_EXIT = 2;

async function main() {
  let wasi;
  let instance;
  try {
    const config = JSON.parse(await readFile(process.argv[2], "utf8"));
    wasi = new WASI({
      version: config.version ?? "preview1",
      args: config.args ?? [],
      env: config.env ?? {},
      preopens: config.preopens ?? {},
      returnOnExit: true,
    });
    const module = await WebAssembly.compile(await readFile(config.wasm));
    instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  } catch (err) {
    process.stderr.write(`node_runner: setup failed: ${err?.stack ?? err}\n`);
    return SETUP_EXIT;
  }
  try {
    return wasi.start(instance) ?? 0;
  } catch (err) {
    process.stderr.write(`node_runner: trap: ${err?.message ?? err}\n`);
    return TRAP_EXIT;
  }
}

// Set exitCode rather than calling process.exit() so pending stdio drains.
process.exitCode = await main();
