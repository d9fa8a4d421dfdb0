/**
 * mapStream on its own: what reaches the consumer, and when `end` and
 * `fail` are called (each stream ends exactly one way).
 */
import { describe, expect, it } from "vitest";
import { mapStream } from "../../src/transport/map-stream.js";

async function* numbers(count: number, failAt = -1): AsyncGenerator<number> {
  for (let i = 0; i < count; i++) {
    if (i === failAt) throw new Error(`source failed at ${i}`);
    yield i;
  }
}

function recorder() {
  const calls: string[] = [];
  return {
    calls,
    hooks: {
      map: (n: number) => `#${n}`,
      end: () => void calls.push("end"),
      fail: (error: unknown) => {
        calls.push(`fail: ${(error as Error).message}`);
        return new Error(`mapped: ${(error as Error).message}`);
      },
    },
  };
}

async function drain(stream: AsyncIterable<string>): Promise<{ values: string[]; error: string | null }> {
  const values: string[] = [];
  try {
    for await (const value of stream) values.push(value);
    return { values, error: null };
  } catch (error) {
    return { values, error: (error as Error).message };
  }
}

describe("mapStream", () => {
  it("maps every message in order and calls end once when the source ends", async () => {
    const { calls, hooks } = recorder();
    expect(await drain(mapStream(() => numbers(3), hooks))).toEqual({ values: ["#0", "#1", "#2"], error: null });
    expect(calls).toEqual(["end"]);
  });

  it("passes on the error fail returns, and calls fail alone, when the source fails", async () => {
    const { calls, hooks } = recorder();
    expect(await drain(mapStream(() => numbers(3, 2), hooks))).toEqual({ values: ["#0", "#1"], error: "mapped: source failed at 2" });
    expect(calls).toEqual(["fail: source failed at 2"]);
  });

  it("opens the source at the first next(); an error thrown there fails the stream", async () => {
    const { calls, hooks } = recorder();
    let opened = false;
    const stream = mapStream(() => {
      opened = true;
      throw new Error("refused");
    }, hooks);
    expect(opened).toBe(false);
    expect(await drain(stream)).toEqual({ values: [], error: "mapped: refused" });
    expect(calls).toEqual(["fail: refused"]);
  });

  it("a consumer that stops reading returns the source and calls end once", async () => {
    const { calls, hooks } = recorder();
    let returned = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        returned = true;
      }
    }
    const values: string[] = [];
    for await (const value of mapStream(endless, hooks)) {
      values.push(value);
      if (values.length === 2) break;
    }
    expect(values).toEqual(["#0", "#1"]);
    expect(returned).toBe(true);
    expect(calls).toEqual(["end"]);
  });

  it("an error thrown by end fails the stream instead of ending it", async () => {
    const stream = mapStream(() => numbers(1), {
      map: (n: number) => String(n),
      end: () => {
        throw new Error("the credential expired");
      },
      fail: (error: unknown) => error,
    });
    expect(await drain(stream)).toEqual({ values: ["0"], error: "the credential expired" });
  });
});
