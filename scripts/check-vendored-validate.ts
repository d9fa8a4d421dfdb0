// Checks that proto-vendor/buf/validate/validate.proto (vendored because the
// Buf Schema Registry is unreachable) compiles with buf to exactly the
// FileDescriptorProto embedded in the installed @bufbuild/protovalidate.
//
// Usage: node --import tsx scripts/check-vendored-validate.ts
//
// The comparison is exact, including options: the buf.validate option values
// are extensions of FieldOptions etc., so they are compared via a registry
// holding validate.proto (and any other unknown fields are compared too).
// The only normalization is clearing source_code_info on both sides
// (comments/locations are not embedded in the package).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { clone, createRegistry, equals, fromBinary, toJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const FILE = "buf/validate/validate.proto";
const root = fileURLToPath(new URL("..", import.meta.url));
const { version } = JSON.parse(
  readFileSync(`${root}/node_modules/@bufbuild/protovalidate/package.json`, "utf8"),
) as { version: string };

let image: Buffer;
try {
  image = execFileSync(
    `${root}/node_modules/.bin/buf`,
    ["build", "proto-vendor", "--as-file-descriptor-set", "--exclude-source-info", "-o", "-"],
    { cwd: root, maxBuffer: 256 * 1024 * 1024 },
  );
} catch {
  console.error("buf build proto-vendor failed (see buf's output above)");
  process.exit(1);
}
const built = fromBinary(FileDescriptorSetSchema, image).file.find((f) => f.name === FILE);
if (!built) {
  console.error(`${FILE} not found in the output of buf build proto-vendor`);
  process.exit(1);
}

function normalize(file: FileDescriptorProto): FileDescriptorProto {
  const copy = clone(FileDescriptorProtoSchema, file);
  copy.sourceCodeInfo = undefined;
  return copy;
}
const registry = createRegistry(file_buf_validate_validate);
const vendored = normalize(built);
const embedded = normalize(file_buf_validate_validate.proto);

if (equals(FileDescriptorProtoSchema, vendored, embedded, { registry, unknown: true, extensions: true })) {
  console.log(`vendored validate.proto matches @bufbuild/protovalidate ${version}`);
  process.exit(0);
}

// Locate the first difference in the JSON form (with the buf.validate options
// decoded), naming array elements by their `name` where they have one.
type Json = Record<string, JsonValue> | JsonValue[];
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null;
function firstDiff(a: JsonValue | undefined, b: JsonValue | undefined, path: string): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (!isObject(a) || !isObject(b)) {
    return `${path}: vendored ${JSON.stringify(a)}, embedded ${JSON.stringify(b)}`;
  }
  const x = a as Record<string, JsonValue>;
  const y = b as Record<string, JsonValue>;
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    const name = (x[k] as { name?: string } | undefined)?.name ?? (y[k] as { name?: string } | undefined)?.name;
    const diff = firstDiff(x[k], y[k], Array.isArray(a) ? `${path}[${name ?? k}]` : `${path}.${k}`);
    if (diff) return diff;
  }
  return `${path}: differs`;
}
const json = (file: FileDescriptorProto) =>
  toJson(FileDescriptorProtoSchema, file, { registry });
console.error(
  `vendored ${FILE} does NOT match @bufbuild/protovalidate ${version}\n  first difference at ` +
    (firstDiff(json(vendored), json(embedded), FILE) ?? `${FILE}: unknown fields not shown in JSON`),
);
process.exit(1);
