/**
 * Serves the review console (web/, issue 11) at /ui/ on the service port, as
 * a `plain` handler (src/transport/server.ts): same origin as the RPCs, so
 * the page needs no CORS.
 *
 * The bundle is built in memory with esbuild's JS API on the first /ui
 * request (about 100-300 ms, once per process), not at startup: replicas and
 * tests that never open the console pay nothing. Nothing is written to disk
 * and no network is used.
 *
 *   GET /ui                  308 to /ui/
 *   GET /ui/assets/<name>    the hashed script and stylesheet, cached for a
 *                            year (`immutable`): their names change with them
 *   GET /ui/<anything else>  index.html (client-side routing), `no-cache` with
 *                            an ETag, so a new build is picked up at once
 *
 * Every answer carries a Content-Security-Policy that allows only this
 * origin (scripts, styles, fetch), so the page cannot load or send anything
 * elsewhere.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type http from "node:http";
import type http2 from "node:http2";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { PlainHandler } from "../observability/endpoints.js";

type Response = http.ServerResponse | http2.Http2ServerResponse;

/** Where the console's source lives (the repository's web/). */
const WEB_DIR = fileURLToPath(new URL("../../web/", import.meta.url));

/** The console's URL prefix. */
export const CONSOLE_PATH = "/ui/";

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

interface Asset {
  body: Buffer;
  contentType: string;
  etag: string;
}

/** The built console: index.html and the hashed assets by name. */
export interface ConsoleBundle {
  index: Asset;
  assets: Map<string, Asset>;
}

/** Bundles web/main.ts (preact + htm + connect-web) and the stylesheet into memory. */
export async function buildConsole(webDir = WEB_DIR): Promise<ConsoleBundle> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [`${webDir}main.ts`],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    minify: true,
    legalComments: "none",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const js = Buffer.from(result.outputFiles[0]!.contents);
  const css = await readFile(`${webDir}console.css`);
  const jsName = `main-${digest(js)}.js`;
  const cssName = `console-${digest(css)}.css`;
  const template = await readFile(`${webDir}index.html`, "utf8");
  const index = Buffer.from(template.replace("%JS%", `${CONSOLE_PATH}assets/${jsName}`).replace("%CSS%", `${CONSOLE_PATH}assets/${cssName}`));
  return {
    index: asset(index, "text/html; charset=utf-8"),
    assets: new Map([
      [jsName, asset(js, "text/javascript; charset=utf-8")],
      [cssName, asset(css, "text/css; charset=utf-8")],
    ]),
  };
}

/** Creates the /ui handler; other paths are left to the next handler (returns false). */
export function createConsoleHandler(options: { log: Logger; build?: () => Promise<ConsoleBundle> }): PlainHandler {
  let bundle: Promise<ConsoleBundle> | null = null;
  const load = () => {
    bundle ??= (options.build ?? buildConsole)().catch((error: unknown) => {
      bundle = null; // try again on the next request
      throw error;
    });
    return bundle;
  };
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    if (path !== "/ui" && !path.startsWith(CONSOLE_PATH)) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" }, Buffer.from("method not allowed\n"), false);
      return true;
    }
    if (path === "/ui") {
      send(res, 308, { location: CONSOLE_PATH }, Buffer.alloc(0), false);
      return true;
    }
    const head = req.method === "HEAD";
    void load().then(
      (built) => {
        if (path.startsWith(`${CONSOLE_PATH}assets/`)) {
          const found = built.assets.get(path.slice(`${CONSOLE_PATH}assets/`.length));
          if (found === undefined) send(res, 404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, Buffer.from("not found\n"), head);
          else serve(req.headers["if-none-match"], res, found, "public, max-age=31536000, immutable", head);
        } else {
          serve(req.headers["if-none-match"], res, built.index, "no-cache", head);
        }
      },
      (error: unknown) => {
        options.log.error({ err: error }, "building the review console failed");
        send(res, 500, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, Buffer.from("the review console could not be built; see the server log\n"), head);
      },
    );
    return true;
  };
}

function serve(ifNoneMatch: string | undefined, res: Response, found: Asset, cacheControl: string, head: boolean): void {
  const headers = { "content-type": found.contentType, "cache-control": cacheControl, etag: found.etag };
  if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((tag) => tag.trim() === found.etag || tag.trim() === "*")) {
    send(res, 304, { "cache-control": cacheControl, etag: found.etag }, Buffer.alloc(0), true);
  } else {
    send(res, 200, { ...headers, "content-length": String(found.body.length) }, found.body, head);
  }
}

function send(res: Response, status: number, headers: Record<string, string>, body: Buffer, head: boolean): void {
  const r = res as http.ServerResponse;
  r.writeHead(status, { ...SECURITY_HEADERS, ...headers });
  if (head) r.end();
  else r.end(body);
}

function asset(body: Buffer, contentType: string): Asset {
  return { body, contentType, etag: `"${digest(body)}"` };
}

function digest(body: Buffer): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 16);
}
