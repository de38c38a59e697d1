// Module resolution for running web/*.js under Node: the page imports its
// vendored libraries from ./vendor/ (build_site.py copies them there from
// node_modules); under Node they resolve to the same files in node_modules.
// Registered by the Node tests with module.register before importing web/ code.

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const VENDOR = {
  "comlink.mjs": "node_modules/comlink/dist/esm/comlink.mjs",
  "idb-keyval.js": "node_modules/idb-keyval/dist/index.js",
};

export async function resolve(specifier, context, next) {
  const match = /(?:^|\/)vendor\/([\w.-]+)$/.exec(specifier);
  if (match && VENDOR[match[1]] && context.parentURL?.includes("/web/")) {
    return { url: pathToFileURL(path.join(ROOT, VENDOR[match[1]])).href, shortCircuit: true };
  }
  return next(specifier, context);
}
