"""SessionManagerClient: the RPCs with retries, session scopes, and a resuming watch.

The Python counterpart of src/client (same retry rules, same session handle
and watch semantics). Every mutating method draws its record_id (a ULID)
once per call, before the first attempt, so all attempts of one call carry
the same one and the service writes it at most once.
"""

import inspect
import time

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

from ._errors import SessionManagerError
from ._retry import RetryPolicy, backoff_delay, is_retryable, new_record_id
from ._stubs import service_grpc, service_pb2, session_pb2


def _struct(value):
    if value is None:
        return None
    if isinstance(value, struct_pb2.Struct):
        return value
    result = struct_pb2.Struct()
    result.update(value)
    return result


def _duration(seconds):
    if seconds is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(int(round(seconds * 1000)))
    return duration


def _timestamp(when):
    """A datetime (naive means UTC) or a Timestamp, or None."""
    if when is None or isinstance(when, timestamp_pb2.Timestamp):
        return when
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(when)
    return timestamp


def _takes_refresh(credential):
    try:
        parameters = inspect.signature(credential).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "refresh" or p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)


class SessionManagerClient:
    """A client of SessionManagerService over gRPC (grpcio).

    target       "host:port"
    credential   an API key or JWT string, or a callable returning one, called
                 before every attempt and every (re)connection of a watch; if it
                 accepts a `refresh` keyword it is told refresh=True when the
                 service refused the previous token (a watch whose JWT expired)
                 and must return a fresh one. Sent as `authorization: Bearer <token>`;
                 None or "" sends nothing.
    retry        a RetryPolicy for unary calls (default 5 attempts, 0.1 s doubling
                 to 5 s with jitter, 10 s per attempt)
    channel_credentials  grpc.ssl_channel_credentials(...) for TLS; default cleartext
    options      grpcio channel options
    interceptors grpcio client interceptors, run on every call
    source       the `source` of events appended through session handles
    on_retry     called as on_retry(method, error, attempt, delay_s) before each retry
    """

    def __init__(
        self,
        target,
        credential=None,
        *,
        retry=None,
        channel_credentials=None,
        options=None,
        interceptors=(),
        source="session-manager-client",
        on_retry=None,
    ):
        if channel_credentials is not None:
            channel = grpc.secure_channel(target, channel_credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        self._raw_channel = channel
        if interceptors:
            channel = grpc.intercept_channel(channel, *interceptors)
        self.stub = service_grpc.SessionManagerServiceStub(channel)
        """The generated stub on the same channel, without retries, record ids or credential."""
        self._credential = credential
        self._credential_takes_refresh = callable(credential) and _takes_refresh(credential)
        self.retry = retry or RetryPolicy()
        self.source = source
        self._on_retry = on_retry

    # -- plumbing ---------------------------------------------------------

    @property
    def refreshable(self):
        """Whether the credential is a callable (so a refused token can be replaced)."""
        return callable(self._credential)

    def metadata(self, refresh=False):
        """The call metadata carrying the credential (or None)."""
        credential = self._credential
        if credential is None:
            return None
        if callable(credential):
            token = credential(refresh=refresh) if self._credential_takes_refresh else credential()
        else:
            token = credential
        if not token:
            return None
        return (("authorization", f"Bearer {token}"),)

    def call(self, method, request):
        """Calls the unary RPC `method` (e.g. "GetSession") with retries; raises SessionManagerError."""
        rpc = getattr(self.stub, method)
        policy = self.retry
        timeout = policy.attempt_timeout_s or None
        attempt = 0
        while True:
            attempt += 1
            try:
                return rpc(request, metadata=self.metadata(), timeout=timeout)
            except grpc.RpcError as raised:
                error = SessionManagerError.from_rpc_error(raised)
                if attempt >= policy.max_attempts or not is_retryable(error):
                    raise error from None
                delay = backoff_delay(attempt, policy.initial_delay_s, policy.max_delay_s)
                if self._on_retry is not None:
                    self._on_retry(method, error, attempt, delay)
                time.sleep(delay)

    def close(self):
        self._raw_channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- the RPCs ---------------------------------------------------------

    def start_session(
        self,
        user_id,
        *,
        idle_timeout_s=None,
        max_duration_s=None,
        metadata=None,
        is_training_data=False,
        performer_id="",
        supersede=False,
        event_time=None,
        record_id=None,
    ):
        """StartSession; returns the StartSessionResponse (session, and its session.started event).

        supersede=True ends the user's open session (END_REASON_SUPERSEDED)
        instead of failing with ACTIVE_SESSION_EXISTS.
        """
        request = service_pb2.StartSessionRequest(
            record_id=record_id or new_record_id(),
            user_id=user_id,
            performer_id=performer_id,
            event_time=_timestamp(event_time),
            idle_timeout=_duration(idle_timeout_s),
            metadata=_struct(metadata),
            is_training_data=is_training_data,
            conflict_policy=service_pb2.CONFLICT_POLICY_SUPERSEDE if supersede else service_pb2.CONFLICT_POLICY_REJECT,
            max_duration=_duration(max_duration_s),
        )
        return self.call("StartSession", request)

    def end_session(self, session_id, *, performer_id="", event_time=None, record_id=None):
        """EndSession (idempotent); returns the EndSessionResponse (session, session.ended event)."""
        request = service_pb2.EndSessionRequest(
            record_id=record_id or new_record_id(),
            session_id=session_id,
            performer_id=performer_id,
            event_time=_timestamp(event_time),
        )
        return self.call("EndSession", request)

    def append_session_event(self, session_id, type, payload=None, *, source=None, performer_id="", event_time=None, record_id=None):
        """AppendSessionEvent; returns the AppendSessionEventResponse (its `event` has seq and cursor)."""
        request = service_pb2.AppendSessionEventRequest(
            record_id=record_id or new_record_id(),
            session_id=session_id,
            type=type,
            source=source or self.source,
            performer_id=performer_id,
            event_time=_timestamp(event_time),
            payload=_struct(payload),
        )
        return self.call("AppendSessionEvent", request)

    def pause_session(self, session_id, *, record_id=None):
        """PauseSession; returns the Session."""
        request = service_pb2.PauseSessionRequest(record_id=record_id or new_record_id(), session_id=session_id)
        return self.call("PauseSession", request).session

    def resume_session(self, session_id, *, record_id=None):
        """ResumeSession; returns the Session."""
        request = service_pb2.ResumeSessionRequest(record_id=record_id or new_record_id(), session_id=session_id)
        return self.call("ResumeSession", request).session

    def update_session(self, session_id, *, metadata=None, is_training_data=None, record_id=None):
        """UpdateSession: replaces `metadata` and/or sets `is_training_data` (only those given); returns the Session."""
        paths = (["metadata"] if metadata is not None else []) + (["is_training_data"] if is_training_data is not None else [])
        if not paths:
            raise TypeError("update_session: give metadata and/or is_training_data")
        request = service_pb2.UpdateSessionRequest(
            record_id=record_id or new_record_id(),
            session=session_pb2.Session(
                session_id=session_id, metadata=_struct(metadata), is_training_data=bool(is_training_data)
            ),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        return self.call("UpdateSession", request).session

    def heartbeat_session(self, session_id):
        """HeartbeatSession; returns the Session with its new expire_time."""
        return self.call("HeartbeatSession", service_pb2.HeartbeatSessionRequest(session_id=session_id)).session

    def get_session(self, session_id):
        """GetSession; returns the Session."""
        return self.call("GetSession", service_pb2.GetSessionRequest(session_id=session_id)).session

    def list_sessions(self, user_id="", *, state=0, page_size=0, page_token=""):
        """ListSessions (newest first); `state` a SessionState value or name, e.g. "SESSION_STATE_ACTIVE"."""
        if isinstance(state, str):
            state = session_pb2.SessionState.Value(state)
        request = service_pb2.ListSessionsRequest(user_id=user_id, state=state, page_size=page_size, page_token=page_token)
        return self.call("ListSessions", request)

    def list_session_events(self, session_id, *, page_size=0, page_token=""):
        """ListSessionEvents (seq order)."""
        request = service_pb2.ListSessionEventsRequest(session_id=session_id, page_size=page_size, page_token=page_token)
        return self.call("ListSessionEvents", request)

    # -- sessions and the feed --------------------------------------------

    def session(self, user_id, idle_timeout_s=None, **options):
        """A session scope: `with client.session(user_id=..., idle_timeout_s=...) as s:`.

        Entering starts the session (StartSession) and its heartbeat thread;
        leaving ends it (EndSession, once), also when the body raises. Options:
        those of start_session, plus source, heartbeat_interval_s, on_ended,
        on_heartbeat_error (see SessionHandle).
        """
        from ._session import SessionHandle

        return SessionHandle(self, user_id=user_id, idle_timeout_s=idle_timeout_s, **options)

    def open_session(self, user_id, idle_timeout_s=None, **options):
        """Starts a session and returns its started SessionHandle; call close() (or use `with`) to end it."""
        return self.session(user_id, idle_timeout_s, **options).start()

    def watch(self, user_id="", *, session_id="", types=(), after="", from_beginning=False, frames=False, **options):
        """Follows WatchSessionEvents, resuming from the last frame's cursor; see Watch."""
        from ._watch import Watch

        return Watch(
            self,
            user_id=user_id,
            session_id=session_id,
            types=types,
            after=after,
            from_beginning=from_beginning,
            frames=frames,
            **options,
        )
