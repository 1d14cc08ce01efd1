// Run a WASI command under node:wasi (uvwasi).
//
// Usage: node --no-warnings node_wasi.mjs [--dir HOST::GUEST]... [--argv0 NAME] MODULE [ARGS...]
// (--exceptions and --cache DIR are accepted and ignored: V8 decides features
// by itself and node has no persistent cache of compiled wasm.)
// Exit status: the guest's; 134 after a trap.

import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

const argv = process.argv.slice(2);
const preopens = {};
let argv0 = null;
let i = 0;
for (; i < argv.length && argv[i].startsWith("--"); i++) {
  if (argv[i] === "--dir") {
    const [host, guest] = argv[++i].split("::");
    preopens[guest ?? host] = host;
  } else if (argv[i] === "--argv0") {
    argv0 = argv[++i];
  } else if (argv[i] === "--cache") {
    i++;
  } else if (argv[i] === "--exceptions") {
    // nothing to configure
  } else if (argv[i] === "--") {
    i++;
    break;
  } else {
    process.stderr.write(`node_wasi: unknown option ${argv[i]}\n`);
    process.exit(2);
  }
}
const module = argv[i];
const wasi = new WASI({
  version: "preview1",
  args: [argv0 ?? module, ...argv.slice(i + 1)],
  env: {},
  preopens,
  returnOnExit: true,
});
const compiled = await WebAssembly.compile(await readFile(module));
const instance = await WebAssembly.instantiate(compiled, wasi.getImportObject());
try {
  process.exitCode = wasi.start(instance) ?? 0;
} catch (err) {
  process.stderr.write(`node_wasi: trap: ${err?.message ?? err}\n`);
  process.exitCode = 134;
}
