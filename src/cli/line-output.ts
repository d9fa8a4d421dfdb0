/**
 * Writes text lines to a file or stdout with backpressure: `write` waits
 * while the stream's buffer is full, so a fast reader never piles up memory
 * behind a slow disk or pipe.
 */
import { once } from "node:events";
import { open } from "node:fs/promises";
import type { Writable } from "node:stream";

/** A file or stdout opened by `openLineOutput`; once the stream has failed, `write` rejects with its error. */
export interface LineOutput {
  /** Writes `text` (whole lines, each ending with "\n"); resolves once it may be called again. */
  write(text: string): Promise<void>;
  /** Flushes and closes a file; leaves stdout open. */
  close(): Promise<void>;
}

/**
 * Opens `path` for writing (created or truncated), or stdout when `path` is
 * null.
 *
 * @throws the file system's error (e.g. ENOENT) if the file cannot be opened.
 */
export async function openLineOutput(path: string | null): Promise<LineOutput> {
  if (path === null) return wrap(process.stdout, async () => {});
  const handle = await open(path, "w");
  const stream = handle.createWriteStream();
  return wrap(stream, async () => {
    stream.end();
    await once(stream, "close");
  });
}

function wrap(stream: Writable, close: () => Promise<void>): LineOutput {
  let failure: Error | null = null;
  stream.on("error", (error: Error) => {
    failure = error;
  });
  return {
    async write(text) {
      if (failure) throw failure;
      if (!stream.write(text)) await Promise.race([once(stream, "drain"), once(stream, "error")]);
      if (failure) throw failure;
    },
    close,
  };
}
