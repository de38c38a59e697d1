// ESLint's recommended rules over the project's JavaScript (run by tests/test_lint.py).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "site/", ".cache/"] },
  js.configs.recommended,
  {
    rules: {
      // `const { a, ...rest } = x` is how the code drops keys from an object.
      "no-unused-vars": ["error", { ignoreRestSiblings: true }],
    },
  },
  {
    // The page and its module Web Workers (worker.js, and parallel.js on both sides).
    files: ["web/**/*.js"],
    languageOptions: {
      sourceType: "module",
      globals: { ...globals.browser, ...globals.worker },
    },
  },
  {
    // A classic service worker script; build_site.py prepends its BUILD constant.
    files: ["web/sw.js"],
    languageOptions: {
      sourceType: "script",
      globals: { ...globals.serviceworker, BUILD: "readonly" },
    },
  },
  {
    // Node scripts: the Pyodide runner and the tests run with `node --test`.
    files: ["tools/*.mjs", "tests/*.mjs", "eslint.config.mjs"],
    languageOptions: {
      sourceType: "module",
      globals: { ...globals.node },
    },
  },
];
