/**
 * A raw HTTP/2 client over node:net, for what real clients refuse to send:
 * more streams than the server allows, header blocks over its limits,
 * HEADERS + RST_STREAM floods. Header blocks are HPACK literals without
 * indexing or Huffman coding (RFC 7541 section 6.2.2), which every decoder
 * must accept. Frames the server sends are parsed into `frames` but their
 * header blocks are not decoded: tests look at frame types, stream ids and
 * error codes only.
 */
import net from "node:net";

/** Frame types (RFC 9113 section 6). */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
/** Frame flags. */
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
/** Error codes (RFC 9113 section 7). */
export const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 } as const;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** SETTINGS_MAX_FRAME_SIZE every peer accepts before any SETTINGS (RFC 9113 section 6.5.2). */
const MAX_FRAME_BYTES = 16_384;

/** Holds one frame the server sent. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Encodes one frame. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** Encodes an HPACK integer with an `prefixBits`-bit prefix whose high bits are `first` (RFC 7541 section 5.1). */
function hpackInteger(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7, 0), bytes]);
}

/** Encodes a header list as HPACK literals without indexing, new names (RFC 7541 section 6.2.2). */
export function headerBlock(headers: Array<[string, string]>): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]));
}

/** Encodes a header block as HEADERS and as many CONTINUATION frames as it needs. */
export function headersFrames(streamId: number, block: Buffer, endStream: boolean): Buffer {
  const frames: Buffer[] = [];
  for (let offset = 0; offset === 0 || offset < block.length; offset += MAX_FRAME_BYTES) {
    const part = block.subarray(offset, offset + MAX_FRAME_BYTES);
    const last = offset + MAX_FRAME_BYTES >= block.length;
    const flags = (last ? END_HEADERS : 0) | (offset === 0 && endStream ? END_STREAM : 0);
    frames.push(frame(offset === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, flags, streamId, part));
  }
  return Buffer.concat(frames);
}

/** Encodes RST_STREAM with `code`. */
export function rstStreamFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

/** Encodes a DATA frame, ending the stream when `endStream`. */
export function dataFrame(streamId: number, payload: Buffer, endStream: boolean): Buffer {
  return frame(FRAME.DATA, endStream ? END_STREAM : 0, streamId, payload);
}

/** Returns the request headers of a gRPC call to `path` (a method of the service). */
export function grpcRequestHeaders(path: string, extra: Array<[string, string]> = []): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "127.0.0.1"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ];
}

/** A raw HTTP/2 connection: writes what it is told, records what the server sends. */
export interface RawH2Connection {
  socket: net.Socket;
  /** Every frame received so far. */
  frames: Frame[];
  /** Set when the server sent GOAWAY. */
  goaway: { lastStreamId: number; errorCode: number } | null;
  /** True once the socket closed. */
  closed: boolean;
  /** Writes `bytes`, waiting while the socket's buffer is full; false if the connection closed first. */
  write(bytes: Buffer): Promise<boolean>;
  /** The RST_STREAM frames received, as stream id and error code. */
  resets(): Array<{ streamId: number; errorCode: number }>;
  /** The ids of streams the server ended (HEADERS or DATA with END_STREAM): answered calls. */
  answered(): Set<number>;
}

/**
 * Opens a TCP connection to `port`, sends the client preface and an empty
 * SETTINGS, acknowledges the server's SETTINGS and answers its PINGs.
 */
export async function connectRawH2(port: number): Promise<RawH2Connection> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  const connection: RawH2Connection = {
    socket,
    frames: [],
    goaway: null,
    closed: false,
    async write(bytes) {
      if (connection.closed || socket.destroyed) return false;
      if (socket.write(bytes)) return true;
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
      return !connection.closed;
    },
    resets() {
      return connection.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => ({ streamId: f.streamId, errorCode: f.payload.readUInt32BE(0) }));
    },
    answered() {
      return new Set(connection.frames.filter((f) => (f.type === FRAME.HEADERS || f.type === FRAME.DATA) && f.flags & END_STREAM).map((f) => f.streamId));
    },
  };
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const received: Frame = { type: pending[3]!, flags: pending[4]!, streamId: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) };
      pending = pending.subarray(9 + length);
      connection.frames.push(received);
      if (received.type === FRAME.SETTINGS && !(received.flags & ACK)) socket.write(frame(FRAME.SETTINGS, ACK, 0));
      if (received.type === FRAME.PING && !(received.flags & ACK)) socket.write(frame(FRAME.PING, ACK, 0, received.payload));
      if (received.type === FRAME.GOAWAY) connection.goaway = { lastStreamId: received.payload.readUInt32BE(0) & 0x7fffffff, errorCode: received.payload.readUInt32BE(4) };
    }
  });
  socket.once("close", () => (connection.closed = true));
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return connection;
}
