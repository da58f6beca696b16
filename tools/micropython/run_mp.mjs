// Run a Python script on the real MicroPython interpreter (WebAssembly, npm package
// @micropython/micropython-webassembly-pyscript), with the repo's firmware package copied
// recursively (firmware/runtime, firmware/drivers, ...) to /lib/firmware/ of its virtual
// filesystem, as it is laid out on the reader box.
//
//   node tools/micropython/run_mp.mjs SCRIPT.py [--heapsize BYTES] [--package DIR]...
//
// --package DIR (repo-relative, e.g. tests/firmware) copies that folder's .py files (not
// conftest.py) to /lib/DIR as the package of the same dotted name (tests.firmware), with an
// empty __init__.py at each level: how the one firmware test suite reaches the board.
//
// Exit status 0 when the script ran to the end; 1 with the traceback on stderr when it raised;
// 2 on a usage or setup error.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
let script = null, heapsize = 1024 * 1024;
const packages = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--heapsize") heapsize = parseInt(args[++i], 10);
  else if (args[i] === "--package") packages.push(args[++i]);
  else if (!args[i].startsWith("--") && script === null) script = args[i];
}
if (!script || packages.some((p) => !p || p.startsWith("/") || p.includes(".."))) {
  process.stderr.write("usage: node run_mp.mjs SCRIPT.py [--heapsize BYTES] [--package DIR]\n");
  process.exit(2);
}

let loadMicroPython;
try {
  ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
} catch (e) {
  process.stderr.write(
    "cannot load @micropython/micropython-webassembly-pyscript: run `npm ci` at the repo root\n" +
      String(e) + "\n");
  process.exit(2);
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mp = await loadMicroPython({
  heapsize,
  linebuffer: false,
  stdout: (data) => process.stdout.write(data),
  stderr: (data) => process.stderr.write(data),
});

// The firmware package with its subpackages; main.py, boot.py and manifest.py are not modules
// of the package (they go to the board's root, or to a firmware build).
const NOT_MODULES = new Set(["main.py", "boot.py", "manifest.py"]);
function copyTree(src, dst, top) {
  mp.FS.mkdir(dst);
  for (const name of readdirSync(src)) {
    const path = join(src, name);
    if (statSync(path).isDirectory()) {
      if (name !== "__pycache__" && !name.startsWith(".")) copyTree(path, dst + "/" + name, false);
    } else if (name.endsWith(".py") && !(top && NOT_MODULES.has(name))) {
      mp.FS.writeFile(dst + "/" + name, readFileSync(path));
    }
  }
}
mp.FS.mkdir("/lib");
copyTree(join(root, "firmware"), "/lib/firmware", true);

for (const pkg of packages) {
  let dst = "/lib";
  for (const part of pkg.split("/").filter(Boolean)) {
    dst += "/" + part;
    if (!mp.FS.analyzePath(dst).exists) mp.FS.mkdir(dst);
    if (!mp.FS.analyzePath(dst + "/__init__.py").exists) mp.FS.writeFile(dst + "/__init__.py", "");
  }
  for (const name of readdirSync(join(root, pkg))) {
    if (name.endsWith(".py") && name !== "conftest.py") {
      mp.FS.writeFile(dst + "/" + name, readFileSync(join(root, pkg, name)));
    }
  }
}

// Helpers next to the script (_*.py, e.g. _check.py) go to /lib as plain modules.
const scriptDir = dirname(resolve(script));
for (const name of readdirSync(scriptDir)) {
  if (name.startsWith("_") && name.endsWith(".py")) {
    mp.FS.writeFile("/lib/" + name, readFileSync(join(scriptDir, name)));
  }
}

// A line "#@step" splits the script into parts run one after the other with shared globals.
// Inside one run the WebAssembly port's gc.collect() frees nothing (the running frame's roots
// cannot be told apart), so a heap measurement starts a new part and collects there.
// "#@repeat N" ... "#@end" writes the lines between them N times (steps included).
const source = readFileSync(script, "utf8").replace(
  /^#@repeat (\d+)[^\n]*\n([\s\S]*?)^#@end[^\n]*\n/gm,
  (_, n, body) => body.repeat(parseInt(n, 10)));
const parts = source.split(/^#@step[^\n]*$/m);
try {
  for (const part of parts) {
    await mp.runPythonAsync(part);
  }
} catch (e) {
  // A PythonError's message is the MicroPython traceback.
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
process.exit(0);
