// Validates HTTPRoutes (a JSON array on stdin) strictly against the Gateway API v1 schema.
//
// The validator is @kubernetes-models/gateway-api's, generated from sigs.k8s.io/gateway-api's
// Go types: types, enums, required fields, lengths, patterns and ranges. It accepts fields it
// does not know, so every object is wrapped in a Proxy that records which keys the validator
// reads: it reads every key the schema declares, so a key never read is one the schema lacks,
// which is reported as kubernetes-validate's strict mode reports an unknown field.
// Prints one JSON array: for each route, the list of its problems (empty when valid).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const schema = `${root}/node_modules/@kubernetes-models/gateway-api/_schemas/IoK8sSigsGatewayApiApisV1HTTPRoute.js`;
const { validate } = await import(pathToFileURL(schema).href);

function watched(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const read = new Set();
  seen.push({ value, path, read });
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, watched(child, `${path}/${key}`, seen));
      return children.get(key);
    },
  });
}

const routes = JSON.parse(readFileSync(0, "utf8"));
const results = routes.map((route) => {
  const seen = [];
  const valid = validate(watched(route, "", seen));
  const problems = valid
    ? []
    : validate.errors.map((e) => `${e.instancePath || "/"}: ${e.keyword} ${JSON.stringify(e.params)}`);
  for (const { value, path, read } of seen) {
    if (Array.isArray(value)) continue;
    for (const key of Object.keys(value)) {
      if (!read.has(key)) problems.push(`${path}/${key}: unknown field`);
    }
  }
  return problems;
});
process.stdout.write(JSON.stringify(results));
