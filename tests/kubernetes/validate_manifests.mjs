// Validates Kubernetes manifests against the official OpenAPI schemas, as compiled into
// the npm package kubernetes-models (one validator per kind and apiVersion), and custom
// resources against the CRD schemas of the @kubernetes-models/<project> packages.
//   node validate_manifests.mjs <node_modules dir> <manifests.json>...
// Each file holds a JSON array of {"name": "...", "objects": [manifest, ...]}. Prints every
// error as "<name>: <kind>/<object name>: <path> <message>"; exits 1 when there is any,
// 2 when the package is missing.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// The model packages, searched in this order for a kind's validator. Each has the same
// layout: <group>/<version>/<Kind>.js, core kinds <version>/<Kind>.js. One per line.
const modelPackages = [
  "kubernetes-models",
  "@kubernetes-models/argo-cd",
];

const [modulesDir, ...files] = process.argv.slice(2);
const roots = modelPackages.map((p) => join(modulesDir, p)).filter((r) => existsSync(join(r, "package.json")));
if (!existsSync(join(modulesDir, "kubernetes-models", "package.json"))) {
  console.error(`kubernetes-models is not installed in ${modulesDir}`);
  process.exit(2);
}

async function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  for (const root of roots) {
    const file = group ? join(root, group, version, `${kind}.js`) : join(root, version, `${kind}.js`);
    if (existsSync(file)) {
      const mod = await import(pathToFileURL(file).href);
      return mod[kind];
    }
  }
  return null;
}

let errors = 0;
let checked = 0;
for (const f of files) {
  const sets = JSON.parse(await readFile(f, "utf8"));
  for (const set of sets) {
    for (const obj of set.objects) {
      const where = `${set.name}: ${obj.kind}/${obj.metadata?.name}`;
      const Model = await validatorFor(obj.apiVersion ?? "", obj.kind ?? "");
      if (!Model) {
        console.log(`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind} in ${modelPackages.join(", ")}`);
        errors++;
        continue;
      }
      try {
        new Model(obj).validate();
        checked++;
      } catch (e) {
        for (const line of String(e.message).split("\n")) {
          console.log(`${where}: ${line}`);
        }
        errors++;
      }
    }
  }
}
console.log(`${checked} manifests valid, ${errors} errors`);
process.exit(errors ? 1 : 0);
