// Validates Kubernetes manifests against the official OpenAPI schemas, as compiled into
// the npm package kubernetes-models (one validator per kind and apiVersion).
//   node validate_manifests.mjs <node_modules dir> <manifests.json>...
// Each file holds a JSON array of {"name": "...", "objects": [manifest, ...]}. Prints every
// error as "<name>: <kind>/<object name>: <path> <message>"; exits 1 when there is any,
// 2 when the package is missing.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, ...files] = process.argv.slice(2);
const root = join(modulesDir, "kubernetes-models");
if (!existsSync(join(root, "package.json"))) {
  console.error(`kubernetes-models is not installed in ${modulesDir}`);
  process.exit(2);
}

async function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const file = group ? join(root, group, version, `${kind}.js`) : join(root, version, `${kind}.js`);
  if (!existsSync(file)) {
    return null;
  }
  const mod = await import(pathToFileURL(file).href);
  return mod[kind];
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
        console.log(`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
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
