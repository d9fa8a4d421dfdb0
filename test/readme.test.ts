/** Keeps the README's config and error tables true to the code. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES } from "../src/config.js";
import { Code } from "@connectrpc/connect";
import { REASONS } from "../src/domain/errors.js";
import { REASON_CODES } from "../src/transport/errors.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

function tableRows(heading: string): string[][] {
  const section = readme.split(/^## /m).find((part) => part.startsWith(heading)) ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim().replace(/^`|`$/g, "")));
}

describe("README", () => {
  it("lists every config variable with its default and meaning, in order", () => {
    const rows = tableRows("Configuration");
    expect(rows.map(([name, fallback, meaning]) => ({ name, default: fallback, description: meaning }))).toEqual(
      CONFIG_VARIABLES.map((variable) => ({ ...variable })),
    );
  });

  it("lists every error reason with its code", () => {
    const rows = tableRows("Errors").map(([code, reason]) => `${code} ${reason}`);
    const expected = REASONS.map((reason) => `${screamingSnake(Code[REASON_CODES[reason]])} ${reason}`);
    expect(rows.sort()).toEqual(expected.sort());
  });
});

/** Spells a Code name as the README does: InvalidArgument -> INVALID_ARGUMENT. */
function screamingSnake(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
