#!/usr/bin/env node
// A solc-compatible command line on top of the official compiler built to WebAssembly (npm `solc`).
//
// It implements what py-solc-x and brownie call on a native solc:
//   solc --version
//   solc --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths DIR[,DIR]...] [FILE|-]
// Imports are read from the filesystem only when they resolve inside the base path, an include
// path or an allowed path; anything else is reported as a compiler error, never read.
//
// The npm module is located through LEDGER_SOLC_JS (absolute path of node_modules/solc), or the
// absolute path baked in by scripts/toolchain/install_solc.py, or next to this script's repository.
"use strict";

const fs = require("fs");
const path = require("path");

const BAKED_MODULE = "__LEDGER_SOLC_JS__"; // replaced with an absolute path by install_solc.py

function locateSolcModule() {
  const candidates = [
    process.env.LEDGER_SOLC_JS,
    BAKED_MODULE.startsWith("__") ? undefined : BAKED_MODULE,
    path.resolve(__dirname, "..", "..", "node_modules", "solc"),
  ].filter(Boolean);
  for (const candidate of candidates) {
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
  }
  process.stderr.write(
    "solc wrapper: cannot find the npm module `solc` (set LEDGER_SOLC_JS or run `make dev`)\n"
  );
  process.exit(2);
}

function usage(message) {
  process.stderr.write(`solc wrapper: ${message}\n`);
  process.stderr.write(
    "usage: solc --version | solc --standard-json [--base-path D] [--include-path D]... [--allow-paths D,...] [FILE|-]\n"
  );
  process.exit(2);
}

function parseArgs(argv) {
  const options = { mode: null, basePath: null, includePaths: [], allowPaths: [], input: "-" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const takeValue = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--version") options.mode = "version";
    else if (arg === "--standard-json") options.mode = "standard-json";
    else if (arg === "--base-path") options.basePath = takeValue();
    else if (arg === "--include-path") options.includePaths.push(takeValue());
    else if (arg === "--allow-paths") options.allowPaths.push(...takeValue().split(",").filter(Boolean));
    else if (arg.startsWith("--")) usage(`unsupported option ${arg}`);
    else options.input = arg;
  }
  if (!options.mode) usage("one of --version or --standard-json is required");
  return options;
}

function isInside(root, candidate) {
  const relative = path.relative(root, candidate);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function makeImportCallback(options) {
  const cwd = process.cwd();
  const base = path.resolve(cwd, options.basePath || ".");
  const searchRoots = [base, ...options.includePaths.map((p) => path.resolve(cwd, p))];
  const allowedRoots = [...searchRoots, ...options.allowPaths.map((p) => path.resolve(cwd, p))];
  return function findImport(sourceUnitName) {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [path.resolve(sourceUnitName)]
      : searchRoots.map((root) => path.resolve(root, sourceUnitName));
    for (const candidate of candidates) {
      let real;
      try {
        real = fs.realpathSync(candidate);
      } catch (_) {
        continue; // not under this root; try the next
      }
      if (!allowedRoots.some((root) => isInside(root, real) || isInside(root, candidate))) {
        return { error: `${sourceUnitName}: outside the allowed paths` };
      }
      return { contents: fs.readFileSync(real, "utf8") };
    }
    return { error: `File not found: ${sourceUnitName} (searched ${searchRoots.join(", ")})` };
  };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const solc = require(locateSolcModule());
  if (options.mode === "version") {
    // Native format: py-solc-x and brownie parse the "Version: X.Y.Z+commit..." line.
    process.stdout.write("solc, the solidity compiler commandline interface\n");
    process.stdout.write(`Version: ${solc.version()}\n`);
    return;
  }
  const raw = options.input === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(options.input, "utf8");
  const output = solc.compile(raw, { import: makeImportCallback(options) });
  process.stdout.write(output + "\n");
}

main();
