// Rebuilds proto-baseline/sessionmanager-v1.binpb, the committed image of the
// sessionmanager.v1 contract that CI (`.ci/run`, step "buf breaking") compares
// proto/ against with the FILE rules configured in buf.yaml.
//
// Usage: node --import tsx scripts/refresh-proto-baseline.ts [--init]
//
// When to run it: after a deliberate, non-breaking addition to the contract
// (a new field, message, enum value, RPC...) has been made, so that the
// baseline follows and later changes are checked against it too. Commit the
// new image with the proto change. Without a refresh CI still passes (an
// addition is not breaking), but removing the addition again would not be
// caught until the baseline includes it.
//
// It never hides a breaking change: it first runs the same `buf breaking` as
// CI against the current baseline and writes nothing if that fails. A
// breaking change (renumbered, renamed or removed field, removed RPC, changed
// type...) cannot land in sessionmanager.v1 at all: outside clients (Python,
// browsers) are compiled against it. It needs a new package,
// sessionmanager.v2, next to v1.
//
// --init creates the baseline when there is none (only ever needed once);
// without it a missing baseline is an error, so deleting the file and
// re-running this script cannot be used to skip the check either.
//
// The image includes imports (buf cannot load an image whose imports are
// missing; CI passes --exclude-imports to `buf breaking` so only our files are
// checked, not the vendored ones) and excludes source info (comments and
// positions play no part in the check), which keeps it small.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const buf = join(root, "node_modules/.bin/buf");
const baseline = "proto-baseline/sessionmanager-v1.binpb";
const init = process.argv.includes("--init");

const run = (args: string[]) => execFileSync(buf, args, { cwd: root, stdio: "inherit" });

if (existsSync(join(root, baseline))) {
  try {
    // Keep in step with the "buf breaking" step of .ci/run.
    run(["breaking", "proto", "--exclude-imports", "--against", baseline]);
  } catch {
    console.error(
      `\nproto/ is not compatible with ${baseline}; not refreshing it.\n` +
        "Breaking changes to sessionmanager.v1 are not allowed: undo them, or add them as a new sessionmanager.v2 package.",
    );
    process.exit(1);
  }
} else if (!init) {
  console.error(`${baseline} is missing; restore it from git (or pass --init to create the first baseline).`);
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), "proto-baseline-"));
try {
  run(["build", "proto", "--exclude-source-info", "-o", join(tmp, "image.binpb")]);
  const image = readFileSync(join(tmp, "image.binpb"));
  const target = join(root, baseline);
  if (existsSync(target) && readFileSync(target).equals(image)) {
    console.log(`${baseline} is already current.`);
  } else {
    mkdirSync(join(root, "proto-baseline"), { recursive: true });
    writeFileSync(target, image);
    // The fresh baseline must accept the tree it was built from.
    run(["breaking", "proto", "--exclude-imports", "--against", baseline]);
    console.log(`Wrote ${baseline}; commit it together with the proto change.`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
