"""client.watch(...): WatchSessionEvents that resumes by itself (the rules of src/client/watch.ts).

It remembers the cursor of the last frame it received, of ANY kind (an
event, caught_up, or a heartbeat, whose cursor moves past events the filters
skipped), and after a disconnect, a replica restart or any error retrying
can fix, reconnects with backoff (drawn between half and all of a step that
doubles from 0.1 s to 5 s, starting over after a frame arrives) and resumes
strictly after that cursor. The service delivers every matching event after
a cursor exactly once, in order, on any replica, so what the iterator yields
has no gap and no repeat across reconnects.

It stops, raising SessionManagerError, on the codes retrying cannot fix:
INVALID_ARGUMENT (INVALID_CURSOR, ...), OUT_OF_RANGE (CURSOR_EXPIRED, with
metadata["earliest_cursor"]), NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS,
PERMISSION_DENIED, UNIMPLEMENTED, and UNAUTHENTICATED, except that with a
callable credential an UNAUTHENTICATED stream (its JWT expired) is resumed at
once with a fresh token (refresh=True), once per failure: a second
UNAUTHENTICATED before any frame arrives is final. RESOURCE_EXHAUSTED
(TOO_MANY_STREAMS) waits at least its RetryInfo delay. Every other code
(UNAVAILABLE, a dropped connection, ...) and a stream that ends without an
error are retried forever.
"""

import threading

import grpc

from ._errors import SessionManagerError
from ._retry import backoff_delay
from ._stubs import service_pb2

FINAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def frame_cursor(frame):
    """The resume cursor a WatchSessionEventsResponse carries, or ""."""
    kind = frame.WhichOneof("frame")
    return getattr(frame, kind).cursor if kind is not None else ""


class Watch:
    """An iterator over the feed: SessionEvents (or, with frames=True, every WatchSessionEventsResponse).

    Iterate it once (`for event in watch:`). `watch.cursor` is the cursor of the
    last frame received (resume a later watch with after=watch.cursor).
    `watch.close()` stops it from any thread (the iteration then ends without
    an error); it is also a context manager.

    Options: backoff_initial_s (0.1), backoff_max_s (5.0), on_reconnect
    (called as on_reconnect(error_or_None, delay_s) before each reconnect).
    """

    def __init__(
        self,
        client,
        *,
        user_id="",
        session_id="",
        types=(),
        after="",
        from_beginning=False,
        frames=False,
        backoff_initial_s=0.1,
        backoff_max_s=5.0,
        on_reconnect=None,
    ):
        self._client = client
        self._filters = {"user_id": user_id or "", "session_id": session_id or "", "types": list(types or ())}
        self._from_beginning = from_beginning
        self._frames = frames
        self._initial_s = backoff_initial_s
        self._max_s = backoff_max_s
        self._on_reconnect = on_reconnect
        self._cursor = after or ""
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._call = None
        self._generator = self._run()

    @property
    def cursor(self):
        return self._cursor

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._generator)

    def close(self):
        """Stops the watch (thread-safe): cancels the open stream and any backoff wait."""
        self._stopped.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _reconnecting(self, error, delay_s):
        if self._on_reconnect is not None:
            self._on_reconnect(error, delay_s)

    def _run(self):
        failures = 0
        refreshed = False  # a fresh token was asked for since the last frame
        while not self._stopped.is_set():
            error = None
            call = None
            try:
                request = service_pb2.WatchSessionEventsRequest(
                    after_cursor=self._cursor,
                    # Once any frame gave a cursor, resuming after it wins over from_beginning and the head.
                    from_beginning=self._cursor == "" and bool(self._from_beginning),
                    **self._filters,
                )
                call = self._client.stub.WatchSessionEvents(request, metadata=self._client.metadata(refresh=refreshed))
                with self._lock:
                    self._call = call
                if self._stopped.is_set():
                    call.cancel()
                for frame in call:
                    cursor = frame_cursor(frame)
                    if cursor:
                        self._cursor = cursor
                    failures = 0
                    refreshed = False
                    if self._frames:
                        yield frame
                    elif frame.WhichOneof("frame") == "event":
                        yield frame.event
            except grpc.RpcError as raised:
                if self._stopped.is_set():
                    return
                error = SessionManagerError.from_rpc_error(raised)
                if error.code == grpc.StatusCode.UNAUTHENTICATED and self._client.refreshable and not refreshed:
                    refreshed = True
                    self._reconnecting(error, 0.0)
                    continue
                if error.code in FINAL_CODES:
                    raise error from None
            finally:
                with self._lock:
                    self._call = None
                if call is not None:
                    call.cancel()  # a no-op on a finished call; ends the stream if the consumer stopped iterating
            if self._stopped.is_set():
                return
            failures += 1
            delay = max(backoff_delay(failures, self._initial_s, self._max_s), (error.retry_delay_s or 0.0) if error else 0.0)
            self._reconnecting(error, delay)
            if self._stopped.wait(delay):
                return
