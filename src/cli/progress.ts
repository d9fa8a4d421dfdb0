/**
 * Reports the progress of a long command on stderr: a progress bar
 * (cli-progress) when stderr is a terminal, otherwise a plain line every
 * few seconds, so logs of scripted runs stay readable.
 */
import cliProgress from "cli-progress";

/** What `createProgress` returns: a bar when stderr is a terminal, else at most one line every 5 s. */
export interface Progress {
  /** Adds `n` finished items. */
  advance(n: number): void;
  /** Stops the display; returns the number of finished items. */
  finish(): number;
}

/** Interval of the plain progress lines when stderr is not a terminal, in ms. */
const PLAIN_INTERVAL_MS = 5_000;

/**
 * Creates a progress display for exported events. `total` is only called
 * when stderr is a terminal (it may be a costly count).
 */
export async function createProgress(total: () => Promise<number>): Promise<Progress> {
  return process.stderr.isTTY ? createBar(await total()) : createPlainLines();
}

function createBar(total: number): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "exporting [{bar}] {percentage}% | {value}/{total} events | eta {eta_formatted}",
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let done = 0;
  bar.start(total, 0);
  return {
    advance(n) {
      done += n;
      bar.update(done);
    },
    finish() {
      bar.stop();
      return done;
    },
  };
}

function createPlainLines(): Progress {
  let done = 0;
  let lastLineAt = Date.now();
  return {
    advance(n) {
      done += n;
      if (Date.now() - lastLineAt < PLAIN_INTERVAL_MS) return;
      lastLineAt = Date.now();
      process.stderr.write(`exported ${done} events so far\n`);
    },
    finish() {
      return done;
    },
  };
}
