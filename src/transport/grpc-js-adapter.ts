/**
 * Serves the SAME Connect service implementations (the routes of
 * src/transport/routes.ts) on a @grpc/grpc-js server, for gRPC over
 * cleartext HTTP/2: grpc-js costs a fraction of connect-node's CPU per call
 * (see README, "Two adapters").
 *
 * Nothing about a call is decided here: each one runs through the same
 * Connect interceptors (validation, access log, error mapping, and whatever
 * is added later) and the same handler functions, invoked as connect-es's
 * `invokeUnaryImplementation` / `transformInvokeImplementation` do (the
 * bidi stream of health's Watch through the latter). Errors leave
 * as gRPC statuses with the `grpc-status-details-bin` trailer that
 * connect-es's gRPC handler writes (`setTrailerStatus`), so both adapters
 * answer byte-for-byte the same details.
 */
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createServiceImplSpec,
  type ConnectRouter,
  type ContextKey,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import { isPushSource, type Sink } from "../feed/push.js";
import { TimerAt } from "../timer-at.js";

/** Configures `createGrpcJsServer`; pass the `routes` and `interceptors` the Connect server gets, so both adapters run the same code. */
export interface GrpcJsServerOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  /** Largest accepted request message, in bytes (larger: RESOURCE_EXHAUSTED). Default 1 MiB. */
  readMaxBytes?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. Default 1000. */
  maxConcurrentStreams?: number;
  /** Largest request metadata (header list), in bytes; larger: RESOURCE_EXHAUSTED. Default 16 KiB. */
  maxMetadataBytes?: number;
}

/**
 * Creates a grpc-js server (not bound to a port: the one-port server injects
 * connections into it) that serves every service the routes register.
 */
export function createGrpcJsServer(options: GrpcJsServerOptions): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.readMaxBytes ?? 1024 * 1024,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams ?? 1000,
    "grpc.max_metadata_size": options.maxMetadataBytes ?? 16 * 1024,
    // Off: nothing here serves channelz, and its per-call trackers cost CPU on every call and
    // memory on every open stream.
    "grpc.enable_channelz": 0,
  });
  for (const spec of collectServices(options.routes)) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of spec.service.methods) {
      const impl = spec.methods[method.localName]!;
      const clientStreams = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
      const serverStreams = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
      definition[method.localName] = {
        path: `/${spec.service.typeName}/${method.name}`,
        requestStream: clientStreams,
        responseStream: serverStreams,
        requestSerialize: (message) => encode(method.input, message),
        requestDeserialize: (bytes) => fromBinary(method.input, bytes),
        responseSerialize: serverStreams ? encodeOnce(method.output) : (message) => encode(method.output, message),
        responseDeserialize: (bytes) => fromBinary(method.output, bytes),
      };
      implementation[method.localName] = handlerFor(impl, options);
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
  return server;
}

/** Records what `routes` registers, without a Connect router behind it. */
function collectServices(routes: (router: ConnectRouter) => void): ServiceImplSpec[] {
  const specs: ServiceImplSpec[] = [];
  const recorder = {
    service(service: Parameters<ConnectRouter["service"]>[0], impl: Parameters<ConnectRouter["service"]>[1]) {
      specs.push(createServiceImplSpec(service, impl));
      return recorder;
    },
    rpc() {
      throw new Error("the grpc-js adapter serves whole services; register them with router.service");
    },
  };
  routes(recorder as unknown as ConnectRouter);
  return specs;
}

/** Encodes a message as a Buffer over toBinary's own bytes (a fresh array: no copy needed). */
function encode(schema: DescMessage, message: unknown): Buffer {
  const bytes = toBinary(schema, message as never);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Returns a serializer for a streaming method's responses that encodes each
 * message object once: the feed hands the same response object to every
 * stream that wants an event (see convert.ts), so a frame fanned out to
 * 10,000 streams costs one encoding. The bytes come out framed (the gRPC
 * 5-byte prefix) and marked PREFRAMED, which our grpc-js patch
 * (patches/@grpc+grpc-js+*.patch, `serializeMessage`) writes as they are:
 * unpatched, grpc-js copied them into a new framed Buffer for every stream.
 * Keys are weak: the bytes live as long as the message.
 */
function encodeOnce(schema: DescMessage): (message: unknown) => Buffer {
  const encoded = new WeakMap<object, Buffer>();
  return (message) => {
    let framed = encoded.get(message as object);
    if (framed === undefined) {
      const bytes = toBinary(schema, message as never);
      framed = Buffer.allocUnsafe(5 + bytes.byteLength);
      framed[0] = 0; // not compressed
      framed.writeUInt32BE(bytes.byteLength, 1);
      framed.set(bytes, 5);
      (framed as Buffer & { [PREFRAMED]?: true })[PREFRAMED] = true;
      encoded.set(message as object, framed);
    }
    return framed;
  };
}

/** The mark of a serializer's output that is already a gRPC message frame (our grpc-js patch). */
const PREFRAMED = Symbol.for("grpc-js.preframedMessage");

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

function handlerFor(impl: MethodImplSpec, options: GrpcJsServerOptions): grpc.UntypedHandleCall {
  const { interceptors } = options;
  switch (impl.kind) {
    case "unary": {
      const next = withInterceptors(unaryHandler(impl), interceptors);
      return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const context = contextFor(impl.method, call);
        next(context.request(false, call.request) as never).then(
          (response) => {
            context.settle();
            callback(null, response.message);
          },
          (error: unknown) => {
            context.settle();
            callback(toServiceError(error));
          },
        );
      };
    }
    case "server_streaming": {
      const next = withInterceptors(serverStreamingHandler(impl), interceptors);
      return (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const context = contextFor(impl.method, call);
        void pump(
          call,
          next(context.request(true, oneMessage(call.request)) as never).then((response) => response.message),
          context.signal,
        );
      };
    }
    case "bidi_streaming":
      return (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        const context = contextFor(impl.method, call);
        void pump(call, transformInvokeImplementation(impl, context.copy(), interceptors)(call as never), context.signal);
      };
    default:
      throw new Error(`the grpc-js adapter does not serve ${impl.kind} methods (${impl.method.name})`);
  }
}

/**
 * Wraps a method's handler end in the interceptors, first one outermost
 * (connect-es's `applyInterceptors`). Built once per method: the handler
 * end finds its call through the request (`callOf`), so a call allocates
 * no closures for the chain (connect-es builds the chain on every call).
 */
function withInterceptors<F extends UnaryFn | StreamingFn>(handler: F, interceptors: Interceptor[]): F {
  let next = handler;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next as never) as F;
  return next;
}

/**
 * The handler end of a unary method's chain, as connect-es's
 * `invokeUnaryImplementation` runs it (the response normalized to a
 * message), without copying the response header and trailer into the
 * context: grpc-js sends neither (see `CallContext`), so they are made only
 * if something reads them.
 */
function unaryHandler(impl: Extract<MethodImplSpec, { kind: "unary" }>): UnaryFn {
  const { method } = impl;
  return async (req) => {
    const context = callOf(req);
    const output = await impl.impl(req.message as never, context.forRequest(req));
    return new HandlerResponse(context, isMessage(output, method.output) ? output : create(method.output, output as never), false) as never;
  };
}

/**
 * The handler end of a server-streaming method's chain, as connect-es's
 * `transformInvokeImplementation` runs it (the request message as a
 * one-element stream, so the validate interceptor reads it the same way),
 * without its wrappers: connect-es ships them down-levelled to ES2017 async
 * generator helpers, which cost several promises per response message,
 * about a fifth of a replica's CPU with 10,000 WatchSessionEvents streams
 * (bench:watch profile). Handlers yield messages made with `create`, so no
 * normalization is needed.
 */
function serverStreamingHandler(impl: Extract<MethodImplSpec, { kind: "server_streaming" }>): StreamingFn {
  return async (req) => {
    const context = callOf(req);
    const input = await singleMessage(req.message);
    return new HandlerResponse(context, impl.impl(input as never, context.forRequest(req)) as AsyncIterable<never>, true) as never;
  };
}

/**
 * The call a request belongs to, through its `contextValues` (which
 * interceptors pass on; connect-es's `mergeRequest` relies on them too).
 *
 * @throws Error if an interceptor replaced the request's contextValues.
 */
function callOf(req: { contextValues: ContextValues }): CallContext {
  if (req.contextValues instanceof CallValues) return req.contextValues.call;
  throw new Error("an interceptor replaced the request's contextValues; the grpc-js adapter finds the call through them");
}

/**
 * A handler's response as interceptors see it; its header and trailer are
 * the context's, made on first read. A class: an object literal with
 * getters makes two closures per call.
 */
class HandlerResponse<S extends boolean, M> {
  constructor(
    private readonly context: CallContext,
    readonly message: M,
    readonly stream: S,
  ) {}

  get method(): DescMethod {
    return this.context.method;
  }

  get service(): DescService {
    return this.context.method.parent;
  }

  get header(): Headers {
    return this.context.responseHeader;
  }

  get trailer(): Headers {
    return this.context.responseTrailer;
  }
}

/**
 * The request of a server-streaming call as a one-message stream, what
 * interceptors see (connect-es's `createAsyncIterable`, an ES2017 async
 * generator, keeps about 600 bytes per open stream).
 */
function oneMessage(message: unknown): AsyncIterable<never> {
  return {
    [Symbol.asyncIterator]() {
      let sent = false;
      return {
        next: () => Promise.resolve(sent ? { done: true as const, value: undefined as never } : ((sent = true), { done: false as const, value: message as never })),
      };
    },
  };
}

type StreamingFn = (req: StreamRequest<DescMessage, DescMessage>) => Promise<StreamResponse<DescMessage, DescMessage>>;
type UnaryFn = (req: UnaryRequest<DescMessage, DescMessage>) => Promise<UnaryResponse<DescMessage, DescMessage>>;

/** Reads the one request message of a server-streaming call (connect-es's `ensureSingle`). */
async function singleMessage(messages: AsyncIterable<unknown>): Promise<unknown> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  const second = await it.next();
  if (second.done !== true) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  return first.value;
}

/**
 * Writes a handler's responses to a grpc-js stream, waiting for `drain` when its buffer is full.
 * A response stream that is a `PushSource` (WatchSessionEvents) may also write frames itself
 * while this loop awaits `next()`; `ready` refuses while the buffer is full, and the stream then
 * keeps the frame for `next()`.
 *
 * A stream that ends because the call's `signal` aborted (the deadline) ends with the abort's
 * status, DEADLINE_EXCEEDED, not OK: the feed treats an aborted signal as the end of the
 * stream, and grpc-js's own deadline timer, which would send the status, may fire after ours.
 */
async function pump(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  source: AsyncIterable<unknown> | Promise<AsyncIterable<unknown>>,
  signal: AbortSignal,
): Promise<void> {
  try {
    const responses = (await source)[Symbol.asyncIterator]();
    // The feed's fast path: frames written while this loop awaits next() (see src/feed/push.ts).
    if (isPushSource<unknown>(responses)) {
      responses.pushTo(new CallSink(call));
    }
    for (;;) {
      const result = await responses.next();
      if (result.done === true) break;
      if (call.cancelled) {
        await responses.return?.();
        break;
      }
      if (!call.write(result.value)) await drained(call);
    }
    if (signal.aborted && !call.cancelled) throw signal.reason;
    call.end();
  } catch (error) {
    if (!call.cancelled) call.emit("error", toServiceError(error));
  }
}

/** The feed's fast path into a grpc-js call: ready while the call is open and its buffer has room. A class: every open stream holds one. */
class CallSink implements Sink<unknown> {
  constructor(private readonly call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) {}

  ready(): boolean {
    return !this.call.cancelled && !this.call.writableNeedDrain;
  }

  write(message: unknown): void {
    this.call.write(message);
  }
}

function drained(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}

/**
 * connect-es's `createContextValues` as a class: its object literal makes
 * three new functions per call (and per open stream); these share a
 * prototype. Values are own properties keyed by the key's symbol, as there.
 */
class CallValues implements ContextValues {
  /** The call these values belong to (`callOf`). */
  constructor(readonly call: CallContext) {}

  get<T>(key: ContextKey<T>): T {
    const values = this as unknown as Record<symbol, T>;
    return key.id in values ? values[key.id]! : key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    (this as unknown as Record<symbol, T>)[key.id] = value;
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    delete (this as unknown as Record<symbol, unknown>)[key.id];
    return this;
  }
}

/**
 * The Connect handler context of a grpc-js call: the fields connect-es's
 * `createHandlerContext` sets, with ONE AbortController that aborts on
 * cancel or deadline. (`createHandlerContext` links three: a deadline
 * controller, a linked one, and ours for cancel, each with its listeners:
 * about 1.5 KiB per open WatchSessionEvents stream and a share of every
 * call's CPU.) The reasons are connect-es's: Canceled for the client's
 * cancel, DeadlineExceeded "the operation timed out". No shutdown signal is
 * linked in: the feed and health end their streams on shutdown themselves,
 * and linking every call to one shared signal costs O(open calls) per call
 * (with 10,000 open streams it took ~8% of a replica's CPU in bench:watch).
 *
 * The response header and trailer are made on first read: grpc-js sends
 * its own response headers, and the status (with the error details) as
 * trailers, so handlers' header and trailer fields are not sent on this
 * adapter, and none of our handlers writes them. Unmade, they save two
 * `Headers` per call and per open stream.
 */
class CallContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly values: ContextValues = new CallValues(this);
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #timer: TimerAt | undefined;
  // `on`, not `once`: grpc-js emits "cancelled" once per call, and `once` keeps a wrapper function per open stream.
  readonly #onCancel = () => this.#controller.abort(new ConnectError("canceled by the client", Code.Canceled));
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;

  constructor(
    readonly method: DescMethod,
    readonly requestHeader: Headers,
    private readonly call: NodeJS.EventEmitter,
    /** Deadline in ms since the epoch; undefined without grpc-timeout. */
    private readonly deadline: number | undefined,
  ) {
    this.signal = this.#controller.signal;
    call.on("cancelled", this.#onCancel);
    if (deadline !== undefined) this.#timer = new TimerAt(deadline, () => this.#controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)));
  }

  /**
   * For a call whose answer is ready: grpc-js emits "cancelled" after EVERY
   * call, answered ones included (it notifies cancellation once it has sent
   * the status), and aborting the context then built a ConnectError (a stack
   * trace) and dispatched abort events for nothing: about a tenth of a no-op
   * call's CPU in a profile. This drops that listener and stops the deadline
   * timer instead.
   */
  settle(): void {
    this.call.off("cancelled", this.#onCancel);
    this.#timer?.cancel();
  }

  get service(): DescService {
    return this.method.parent;
  }

  get url(): string {
    return `/${this.method.parent.typeName}/${this.method.name}`;
  }

  get responseHeader(): Headers {
    return (this.#responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.#responseTrailer ??= new Headers());
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  /** The request interceptors get (connect-es's `requestCommon` with the message), in one object. */
  request<S extends boolean>(stream: S, message: unknown) {
    return { stream, message, method: this.method, service: this.method.parent, requestMethod: this.requestMethod, url: this.url, signal: this.signal, header: this.requestHeader, contextValues: this.values };
  }

  /**
   * The context the handler gets, with what the interceptors passed on
   * (connect-es's `mergeRequest`): this one when they changed nothing.
   */
  forRequest(req: { service: DescService; header: Headers; signal: AbortSignal; contextValues: ContextValues }): HandlerContext {
    if (req.header === this.requestHeader && req.signal === this.signal && req.contextValues === this.values && req.service === this.service) return this;
    return this.copy(req);
  }

  /**
   * A plain-object copy, with the given request fields, whose response
   * header and trailer are this context's: for code that spreads contexts
   * (connect-es's `transformInvokeImplementation` does), which would lose a
   * class's getters.
   */
  copy(req = { service: this.service, header: this.requestHeader, signal: this.signal, contextValues: this.values }): HandlerContext {
    const context = this;
    return {
      method: this.method,
      service: req.service,
      protocolName: this.protocolName,
      requestMethod: this.requestMethod,
      url: this.url,
      signal: req.signal,
      timeoutMs: () => this.timeoutMs(),
      requestHeader: req.header,
      get responseHeader() {
        return context.responseHeader;
      },
      get responseTrailer() {
        return context.responseTrailer;
      },
      values: req.contextValues,
    };
  }
}

/** Builds the context of a grpc-js call (see `CallContext`): its request header from the call's metadata, its deadline from grpc-timeout. */
function contextFor(method: DescMethod, call: AnyCall): CallContext {
  const at = call.getDeadline();
  const deadline = at instanceof Date ? at.getTime() : Number.isFinite(at) ? at : undefined;
  const header = new Headers({ "content-type": "application/grpc" });
  for (const [key, value] of Object.entries(call.metadata.getMap())) {
    if (typeof value === "string") header.append(key, value);
  }
  return new CallContext(method, header, call as NodeJS.EventEmitter, deadline);
}

/**
 * Turns a call's error into a gRPC status with the same trailers connect-es
 * writes for gRPC (grpc-status, grpc-message, grpc-status-details-bin).
 */
function toServiceError(error: unknown): Partial<grpc.StatusObject> {
  const connectError = ConnectError.from(error);
  const trailers = setTrailerStatus(new Headers(), connectError);
  const metadata = new grpc.Metadata();
  const details = trailers.get("grpc-status-details-bin");
  if (details !== null) metadata.set("grpc-status-details-bin", Buffer.from(details, "base64"));
  return { code: connectError.code as number as grpc.status, details: connectError.rawMessage, metadata };
}
