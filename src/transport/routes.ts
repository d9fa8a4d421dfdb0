/**
 * Registers the SessionManagerService handlers on a Connect router. Handlers
 * only map messages to domain calls and back; the rules live in
 * src/domain, transactions in src/service, the feed in src/feed.
 */
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  AppendSessionEventResponseSchema,
  ConflictPolicy,
  PauseSessionResponseSchema,
  ResumeSessionResponseSchema,
  UpdateSessionResponseSchema,
  EndSessionResponseSchema,
  GetSessionResponseSchema,
  HeartbeatSessionResponseSchema,
  ListSessionEventsResponseSchema,
  ListSessionsResponseSchema,
  SessionManagerService,
  StartSessionResponseSchema,
  WatchSessionEventsResponseSchema,
  file_sessionmanager_v1_session_manager_service,
  type WatchSessionEventsRequest,
  type WatchSessionEventsResponse,
} from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import type { Guard, StreamGrant } from "../auth/guard.js";
import type { Feed, WatchFrame } from "../feed/watch.js";
import type { SessionEvent } from "../domain/session.js";
import type { SessionService } from "../service/session-service.js";
import { registerHealth } from "./health.js";
import { mapStream, type StreamHooks } from "./map-stream.js";
import { registerReflection } from "./reflection.js";
import { fromStateFilter, optionalDate, optionalMs, toEventMessage, toSessionMessage } from "./convert.js";

/** What the handlers call: the wired service and feed (src/wiring.ts), shared by both RPC adapters. */
export interface RouteDeps {
  service: SessionService;
  feed: Feed;
  /** The caller checks of the handlers (src/auth/guard.ts); the auth interceptor must run before them. */
  guard: Guard;
  /** Observes each event frame handed to a Watch stream (the delivery-lag metric). */
  onDelivered?: (receiveTime: Date) => void;
  /** Resolves true while the replica can serve; when given, grpc.health.v1 is served too. */
  isServing?: () => Promise<boolean>;
  /** Aborted when the server shuts down (ends health Watch streams). */
  shutdown?: AbortSignal;
}

/**
 * Returns a function that registers SessionManagerService, gRPC server
 * reflection and (with `isServing`) the gRPC health service on a router.
 */
export function createRoutes({ service, feed, guard, onDelivered, isServing, shutdown }: RouteDeps) {
  return (router: ConnectRouter) => {
    registerReflection(router, [file_sessionmanager_v1_session_manager_service, file_grpc_health_v1_health]);
    if (isServing) registerHealth(router, { isServing, ...(shutdown ? { shutdown } : {}) });
    registerSessionManager(router, service, feed, guard, onDelivered ?? (() => {}));
  };
}

function registerSessionManager(router: ConnectRouter, service: SessionService, feed: Feed, guard: Guard, onDelivered: (receiveTime: Date) => void) {
  router.service(SessionManagerService, {
    async startSession(req, ctx) {
      guard.checkUser(ctx.values, req.userId);
      const result = await service.startSession({
        recordId: req.recordId,
        userId: req.userId,
        performerId: req.performerId,
        eventTime: optionalDate("event_time", req.eventTime),
        idleTimeoutMs: optionalMs("idle_timeout", req.idleTimeout),
        maxDurationMs: optionalMs("max_duration", req.maxDuration),
        metadata: req.metadata ?? {},
        isTrainingData: req.isTrainingData,
        conflictPolicy: req.conflictPolicy === ConflictPolicy.SUPERSEDE ? "supersede" : "reject",
      });
      return create(StartSessionResponseSchema, {
        session: toSessionMessage(result.session),
        event: toEventMessage(result.event),
      });
    },

    async endSession(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const result = await service.endSession({
        recordId: req.recordId,
        sessionId: req.sessionId,
        performerId: req.performerId,
        eventTime: optionalDate("event_time", req.eventTime),
      });
      return create(EndSessionResponseSchema, {
        session: toSessionMessage(result.session),
        event: toEventMessage(result.event),
      });
    },

    async heartbeatSession(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const session = await service.heartbeatSession(req.sessionId);
      return create(HeartbeatSessionResponseSchema, { session: toSessionMessage(session) });
    },

    async pauseSession(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const { session } = await service.pauseSession({ recordId: req.recordId, sessionId: req.sessionId });
      return create(PauseSessionResponseSchema, { session: toSessionMessage(session) });
    },

    async resumeSession(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const { session } = await service.resumeSession({ recordId: req.recordId, sessionId: req.sessionId });
      return create(ResumeSessionResponseSchema, { session: toSessionMessage(session) });
    },

    async updateSession(req, ctx) {
      await guard.checkSession(ctx.values, req.session?.sessionId ?? "");
      const paths = new Set(req.updateMask?.paths ?? []);
      const { session } = await service.updateSession({
        recordId: req.recordId,
        sessionId: req.session?.sessionId ?? "",
        ...(paths.has("metadata") ? { metadata: req.session?.metadata ?? {} } : {}),
        ...(paths.has("is_training_data") ? { isTrainingData: req.session?.isTrainingData ?? false } : {}),
      });
      return create(UpdateSessionResponseSchema, { session: toSessionMessage(session) });
    },

    async getSession(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const session = await service.getSession(req.sessionId);
      return create(GetSessionResponseSchema, { session: toSessionMessage(session) });
    },

    async listSessions(req, ctx) {
      guard.checkUser(ctx.values, req.userId);
      const page = await service.listSessions({
        userId: req.userId === "" ? null : req.userId,
        state: fromStateFilter(req.state),
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return create(ListSessionsResponseSchema, {
        sessions: page.items.map(toSessionMessage),
        nextPageToken: page.nextPageToken,
      });
    },

    async appendSessionEvent(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const result = await service.appendSessionEvent({
        recordId: req.recordId,
        sessionId: req.sessionId,
        type: req.type,
        eventTime: optionalDate("event_time", req.eventTime),
        source: req.source,
        performerId: req.performerId,
        payload: req.payload ?? {},
      });
      return create(AppendSessionEventResponseSchema, { event: toEventMessage(result.event) });
    },

    async listSessionEvents(req, ctx) {
      await guard.checkSession(ctx.values, req.sessionId);
      const page = await service.listSessionEvents({
        sessionId: req.sessionId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return create(ListSessionEventsResponseSchema, {
        events: page.items.map(toEventMessage),
        nextPageToken: page.nextPageToken,
      });
    },

    // A mapped stream, not an async generator: one generator level per open stream costs
    // several promise turns per frame fanned out (see map-stream.ts).
    watchSessionEvents(req, ctx) {
      const stream = new WatchStream(req, ctx, feed, guard, onDelivered);
      return mapStream(() => stream.open(), stream);
    },
    });
}

/**
 * One WatchSessionEvents stream's hooks (see `mapStream`): opens the feed
 * once the caller may watch the user (and takes a stream grant: admission
 * control, credential expiry), maps frames to responses, and releases the
 * grant at the end; a stream whose credential expired ends UNAUTHENTICATED.
 * A class: every open stream holds one (four closures before).
 */
class WatchStream implements StreamHooks<WatchFrame, WatchSessionEventsResponse> {
  private grant: StreamGrant | undefined;

  constructor(
    private readonly req: WatchSessionEventsRequest,
    private readonly ctx: HandlerContext,
    private readonly feed: Feed,
    private readonly guard: Guard,
    private readonly onDelivered: (receiveTime: Date) => void,
  ) {}

  open(): AsyncIterable<WatchFrame> {
    const { req, ctx } = this;
    this.guard.checkUser(ctx.values, req.userId);
    const grant = (this.grant = this.guard.openStream(ctx.values));
    const query = { userId: req.userId, sessionId: req.sessionId, types: req.types, afterCursor: req.afterCursor, fromBeginning: req.fromBeginning };
    return this.feed.watch(query, grant.signal === null ? ctx.signal : AbortSignal.any([ctx.signal, grant.signal]));
  }

  map(frame: WatchFrame): WatchSessionEventsResponse {
    if (frame.kind === "event") this.onDelivered(frame.event.receiveTime);
    return toFrameMessage(frame);
  }

  end(): void {
    const { grant } = this;
    if (grant === undefined) return;
    grant.release();
    if (grant.signal?.aborted && !this.ctx.signal.aborted) throw grant.ended();
  }

  fail(error: unknown): unknown {
    this.grant?.release();
    return error;
  }
}

/**
 * Remembers each event's response frame. The fan-out hands the same event to
 * every stream that wants it, so every stream yields the same response
 * object, and the grpc-js adapter encodes it once per replica (see
 * `encodeOnce` in grpc-js-adapter.ts). Keys are weak.
 */
const eventFrames = new WeakMap<SessionEvent, WatchSessionEventsResponse>();

function toFrameMessage(frame: WatchFrame): WatchSessionEventsResponse {
  switch (frame.kind) {
    case "event": {
      let message = eventFrames.get(frame.event);
      if (message === undefined) {
        message = create(WatchSessionEventsResponseSchema, { frame: { case: "event", value: toEventMessage(frame.event) } });
        eventFrames.set(frame.event, message);
      }
      return message;
    }
    case "caught_up":
      return create(WatchSessionEventsResponseSchema, { frame: { case: "caughtUp", value: { cursor: frame.cursor } } });
    case "heartbeat":
      return create(WatchSessionEventsResponseSchema, { frame: { case: "heartbeat", value: { cursor: frame.cursor } } });
  }
}
