// Run a Python script on MicroPython (WebAssembly, @micropython/micropython-webassembly-pyscript)
// with the whole firmware tree, subpackages included (firmware/drivers/...), copied to
// /lib/firmware/. tests/micropython/run_mp.mjs copies only the top level, hence this one.
//
//   node tests/drivers/run_mp_drivers.mjs SCRIPT.py
//
// Exit 0 when the script ran to the end, 1 with the traceback on stderr, 2 on a setup error.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const script = process.argv[2];
if (!script) {
  process.stderr.write("usage: node run_mp_drivers.mjs SCRIPT.py\n");
  process.exit(2);
}
let loadMicroPython;
try {
  ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
} catch (e) {
  process.stderr.write("cannot load @micropython/micropython-webassembly-pyscript: run `npm ci`\n"
    + String(e) + "\n");
  process.exit(2);
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mp = await loadMicroPython({
  heapsize: 1024 * 1024,
  linebuffer: false,
  stdout: (d) => process.stdout.write(d),
  stderr: (d) => process.stderr.write(d),
});

function copyTree(src, dst) {
  mp.FS.mkdir(dst);
  for (const name of readdirSync(src)) {
    const path = join(src, name);
    if (statSync(path).isDirectory()) {
      if (name !== "__pycache__") copyTree(path, dst + "/" + name);
    } else if (name.endsWith(".py")) {
      mp.FS.writeFile(dst + "/" + name, readFileSync(path));
    }
  }
}
mp.FS.mkdir("/lib");
copyTree(join(root, "firmware"), "/lib/firmware");

try {
  await mp.runPythonAsync(readFileSync(script, "utf8"));
} catch (e) {
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
process.exit(0);
