#!/usr/bin/env node
// Run Python inside Pyodide under Node and print the result as JSON.
//
//   node tools/pyodide_node.mjs --numpy <numpy wheel> --pycnn <pycnn wheel or pycnn/ folder>
//        [--mount <host dir>:<pyodide dir>]... (--code "<python>" | --file <script.py>)
//
// The Python source runs in a fresh namespace; the value of its last expression
// (if it ends with one; numpy values become numbers and lists) is converted with
// json.dumps inside Python and printed as the one and only line on stdout.
// Everything Python prints goes to stderr, so it never mixes with the result.
// On a Python error the traceback goes to stderr and the exit code is 1; on bad
// arguments the exit code is 2.
//
// --pycnn takes either the wheel built by `pip wheel --no-deps` (installed with
// loadPackage, as the site does) or the pycnn/ source folder (copied into
// /home/pyodide/pycnn, which is on sys.path: quicker while editing the library).
// --mount makes a host folder readable from Python (for example the MNIST files).

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const USAGE =
  "usage: node tools/pyodide_node.mjs --numpy WHEEL --pycnn WHEEL_OR_DIR " +
  "[--mount HOSTDIR:PYDIR]... (--code SOURCE | --file SCRIPT.py)";

function fail(message, code = 2) {
  process.stderr.write(`pyodide_node: ${message}\n${USAGE}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const args = { mounts: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!["--numpy", "--pycnn", "--mount", "--code", "--file"].includes(flag)) {
      fail(`unknown argument ${JSON.stringify(flag)}`);
    }
    if (value === undefined) fail(`${flag} needs a value`);
    i++;
    if (flag === "--mount") args.mounts.push(value);
    else args[flag.slice(2)] = value;
  }
  if (!args.numpy) fail("--numpy is required");
  if (!args.pycnn) fail("--pycnn is required");
  if ((args.code === undefined) === (args.file === undefined)) fail("give exactly one of --code and --file");
  for (const p of [args.numpy, args.pycnn, args.file].filter(Boolean)) {
    if (!fs.existsSync(p)) fail(`${p} does not exist`);
  }
  return args;
}

// The Pyodide runtime comes from node_modules/pyodide of this checkout.
function pyodideDir() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const require = createRequire(path.join(here, "..", "package.json"));
  try {
    return path.dirname(require.resolve("pyodide/pyodide.mjs"));
  } catch {
    fail("node_modules/pyodide not found: run `npm ci` in the repository root", 2);
  }
}

function copyPycnnSources(pyodide, dir) {
  const target = "/home/pyodide/pycnn";
  pyodide.FS.mkdirTree(target);
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith(".py")) {
      pyodide.FS.writeFile(`${target}/${name}`, fs.readFileSync(path.join(dir, name)));
    }
  }
}

function mount(pyodide, spec) {
  const at = spec.lastIndexOf(":");
  if (at <= 0) fail(`--mount wants HOSTDIR:PYDIR, got ${JSON.stringify(spec)}`);
  const host = path.resolve(spec.slice(0, at));
  const target = spec.slice(at + 1);
  if (!fs.statSync(host, { throwIfNoEntry: false })?.isDirectory()) fail(`${host} is not a folder`);
  pyodide.FS.mkdirTree(target);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: host }, target);
}

// Runs the user's source; json.dumps happens in Python so the JSON is exactly
// what CPython would produce for the same value.
const RUNNER = `
import json
from pyodide.code import eval_code

def _plain(value):
    # numpy scalars and arrays become numbers and (nested) lists
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"the result holds a {type(value).__name__}, which JSON cannot represent")

def _run(source, filename):
    namespace = {"__name__": "__main__", "__file__": filename}
    return json.dumps(eval_code(source, namespace, filename=filename), default=_plain)
_run
`;

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const indexURL = pyodideDir() + path.sep;
  const { loadPyodide } = await import(path.join(indexURL, "pyodide.mjs"));
  const toStderr = { batched: (line) => process.stderr.write(line + "\n") };
  const pyodide = await loadPyodide({ indexURL, stdout: toStderr.batched, stderr: toStderr.batched });
  const quiet = { messageCallback: () => {}, errorCallback: (m) => process.stderr.write(m + "\n") };

  const packages = [path.resolve(args.numpy)];
  const pycnn = path.resolve(args.pycnn);
  const pycnnIsDir = fs.statSync(pycnn).isDirectory();
  if (!pycnnIsDir) packages.push(pycnn);
  await pyodide.loadPackage(packages, quiet);
  if (pycnnIsDir) copyPycnnSources(pyodide, pycnn);
  for (const spec of args.mounts) mount(pyodide, spec);

  const source = args.code ?? fs.readFileSync(args.file, "utf8");
  const filename = args.file ? path.basename(args.file) : "<code>";
  const run = pyodide.runPython(RUNNER);
  let json;
  try {
    json = run(source, filename);
  } catch (err) {
    process.stderr.write(String(err.message ?? err) + "\n");
    process.exit(1);
  } finally {
    run.destroy();
  }
  process.stdout.write(json + "\n");
}

main().catch((err) => {
  process.stderr.write(`pyodide_node: ${err.stack ?? err}\n`);
  process.exit(1);
});
