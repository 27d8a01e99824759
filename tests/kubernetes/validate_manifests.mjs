// Validates Kubernetes manifests against the official OpenAPI schemas, as compiled into
// the npm package kubernetes-models (one validator per kind and apiVersion), and objects of
// other API groups (CRDs: Gateway API's HTTPRoute) against the @kubernetes-models/*
// package that has their group, laid out the same way: <package>/<group>/<version>/<Kind>.js
// (@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute.js).
//   node validate_manifests.mjs <node_modules dir> <manifests.json>...
// Each file holds a JSON array of {"name": "...", "objects": [manifest, ...]}. Prints every
// error as "<name>: <kind>/<object name>: <path> <message>"; exits 1 when there is any,
// 2 when the package is missing.
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, ...files] = process.argv.slice(2);
const root = join(modulesDir, "kubernetes-models");
if (!existsSync(join(root, "package.json"))) {
  console.error(`kubernetes-models is not installed in ${modulesDir}`);
  process.exit(2);
}

// kubernetes-models first (the core and built-in groups), then every installed
// @kubernetes-models/* package (gateway-api, argo-cd, ...).
const scoped = join(modulesDir, "@kubernetes-models");
const roots = [root];
if (existsSync(scoped)) {
  for (const name of readdirSync(scoped).sort()) {
    roots.push(join(scoped, name));
  }
}

async function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const file = roots
    .map((r) => (group ? join(r, group, version, `${kind}.js`) : join(r, version, `${kind}.js`)))
    .find((f) => existsSync(f));
  if (!file) {
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
