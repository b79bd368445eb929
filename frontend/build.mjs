// Bundles src/index.jsx and its npm packages into ONE static file inside the Python package
// (trainkit/form/static/form.js), which the wheel ships and `trainkit form` serves offline.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outfile = process.env.TRAINKIT_FORM_BUNDLE || path.join(here, "..", "trainkit", "form", "static", "form.js");

await build({
  entryPoints: [path.join(here, "src", "index.jsx")],
  outfile,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome90", "firefox90", "safari14"],
  jsx: "transform",
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "eof",
  logLevel: "warning",
});
console.log(`built ${path.relative(process.cwd(), outfile)}`);
