/**
 * One port for HTTP/1.1 and cleartext HTTP/2 (h2c): reads the first bytes of
 * a plaintext connection and hands the socket on.
 *
 * - Bytes that start with the HTTP/2 connection preface ("PRI * HTTP/2.0",
 *   RFC 9113 section 3.4) go to the h2c handler; anything else goes to the
 *   HTTP/1.1 server. A prefix of the preface waits for more bytes; the first
 *   byte that differs decides at once, so an HTTP/1.1 request never waits for
 *   14 bytes.
 * - The bytes read so far are pushed back (`unshift`), so the server that
 *   takes over reads the connection from its first byte.
 * - A connection not handed on within `timeoutMs` of its accept (nothing
 *   sent, or a prefix of the preface, however slowly dribbled) is destroyed;
 *   once handed on, the receiving server's own timeouts apply. The timer is
 *   one-shot from accept: an idle timeout would restart on each byte, and a
 *   client sending the 13-byte prefix one byte at a time held the socket for
 *   13 x `timeoutMs` (found by test/abuse).
 * - Pitfall: never `resume()` the socket on the h2 path. The HTTP/2 session
 *   reads the pushed-back bytes itself, one tick later (Node's http2 core); a
 *   resumed socket emits them first as 'data' events that nobody listens to,
 *   the preface is lost and every h2c call fails.
 */
import type http from "node:http";
import type net from "node:net";

/** Holds the part of the HTTP/2 connection preface that tells it from an HTTP/1.1 request line. */
export const PREFACE = Buffer.from("PRI * HTTP/2.0");

/**
 * Hands a plaintext connection to `h2c` if it starts with the HTTP/2
 * preface, otherwise to the HTTP/1.1 server `h1`, with every byte intact.
 * Destroys it if it is not handed on within `timeoutMs` (ms) of now.
 */
export function routeBySniffing(socket: net.Socket, h1: http.Server, h2c: (socket: net.Socket) => void, timeoutMs: number): void {
  let head = Buffer.alloc(0);
  // A connection that never decides is never handed on; drop it instead of keeping it forever.
  const deadline = setTimeout(() => socket.destroy(), timeoutMs);
  deadline.unref();
  socket.once("close", () => clearTimeout(deadline));
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const prefix = head.subarray(0, PREFACE.length);
    if (prefix.length < PREFACE.length && PREFACE.subarray(0, prefix.length).equals(prefix)) return;
    socket.off("data", onData);
    clearTimeout(deadline);
    socket.pause();
    socket.unshift(head);
    if (prefix.equals(PREFACE)) {
      // Do not resume(): the HTTP/2 session reads the socket itself.
      h2c(socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}
