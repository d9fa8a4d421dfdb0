/** The vitest assertion over feed-checker results, shared by the replicas and standby tests. */
import { expect } from "vitest";
import type { CheckResult } from "./feed-checker.js";

/** Expects every subscriber to have seen something, and its deliveries to equal the table's order: no skip, duplicate, reorder or stranger. */
export function expectExactDelivery(results: CheckResult[]): void {
  for (const result of results) {
    expect(result.expected, `${result.name}: the phase wrote nothing it should see`).toBeGreaterThan(0);
    expect({ name: result.name, skips: result.skips, duplicates: result.duplicates, reorders: result.reorders, unexpected: result.unexpected }).toEqual({
      name: result.name,
      skips: 0,
      duplicates: 0,
      reorders: 0,
      unexpected: 0,
    });
    expect(result.deliveredIds).toEqual(result.expectedIds);
  }
}
