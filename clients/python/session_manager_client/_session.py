"""Session handles (the Python counterpart of src/client/session.ts).

`with client.session(user_id=..., idle_timeout_s=...) as s:` starts a
session, heartbeats it from a background thread every third of its idle
timeout (counted from the last activity the handle sent), sends no heartbeat
while the session is paused (`s.pause()` ... `s.resume()`), and ends it when
the block is left, also when the body raises, exactly once: `end()` is
memoized, keeps one record_id across retries and calls, and EndSession on an
ENDED session returns the original end.

If the session ends under the handle (idle timeout, max duration, superseded
by another StartSession, ended by another client), the next heartbeat or
call gets FAILED_PRECONDITION SESSION_ENDED (or NOT_FOUND SESSION_NOT_FOUND);
the handle then stops heartbeating, asks EndSession how it ended (which never
ends anything twice), and reports it: `s.ended` turns True, `s.end_info`
holds it, and `on_ended(end_info)` is called.
"""

import collections
import threading
import time

import grpc

from ._errors import SessionManagerError
from ._retry import new_record_id
from ._stubs import session_pb2

SessionEnd = collections.namedtuple("SessionEnd", ("session", "event", "end_reason", "by_this_handle"))
SessionEnd.__doc__ = """How a session ended: the Session (ENDED), its session.ended event (None if
EndSession could not be reached), the EndReason value, and whether this handle ended it."""


class SessionHandle:
    """A session scope; see the module comment. Create it with client.session(...)."""

    def __init__(
        self,
        client,
        *,
        user_id,
        idle_timeout_s=None,
        source=None,
        heartbeat_interval_s=None,
        on_ended=None,
        on_heartbeat_error=None,
        **start_options,
    ):
        self._client = client
        self._user_id = user_id
        self._idle_timeout_s = idle_timeout_s
        self._start_options = start_options
        self.source = source or client.source
        self._heartbeat_interval_s = heartbeat_interval_s
        self._on_ended = on_ended
        self._on_heartbeat_error = on_heartbeat_error
        self._cond = threading.Condition()
        self._end_lock = threading.Lock()
        self._session = None
        self._started_event = None
        self._paused = False
        self._closing = False
        self._end = None
        self._end_record_id = new_record_id()
        self._next_beat = 0.0
        self._thread = None
        self.heartbeats = 0
        """Heartbeats the handle has sent successfully (for logs and tests)."""

    # -- lifecycle ----------------------------------------------------------

    def start(self):
        """Starts the session (StartSession, with retries) and the heartbeat thread; returns self."""
        if self._session is not None:
            raise RuntimeError("session already started")
        response = self._client.start_session(self._user_id, idle_timeout_s=self._idle_timeout_s, **self._start_options)
        with self._cond:
            self._session = response.session
            self._started_event = response.event
            self._paused = response.session.state == session_pb2.SESSION_STATE_PAUSED
            self._next_beat = time.monotonic() + self.heartbeat_interval_s
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{response.session.session_id}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self):
        return self.start() if self._session is None else self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.end()
        except Exception as error:
            if exc is None:
                raise
            # The body's exception wins; say that ending failed too.
            if hasattr(exc, "add_note"):
                exc.add_note(f"ending session {self.session_id} failed too: {error!r}")
        return False

    def close(self):
        """Stops heartbeating and ends the session (see end())."""
        self.end()

    # -- state --------------------------------------------------------------

    @property
    def session_id(self):
        return self._session.session_id if self._session is not None else ""

    @property
    def session(self):
        """The Session as of the last response the handle received."""
        return self._session

    @property
    def started_event(self):
        """The session.started event."""
        return self._started_event

    @property
    def ended(self):
        """True once the handle knows the session ended (by end()/leaving the scope, or under it)."""
        return self._end is not None

    @property
    def end_info(self):
        """A SessionEnd once `ended`, else None."""
        return self._end

    @property
    def paused(self):
        """True while the handle knows the session is paused (no heartbeats are sent)."""
        return self._paused

    @property
    def heartbeat_interval_s(self):
        """The heartbeat period: a third of the session's idle timeout (as the server returned it), at least 0.1 s."""
        if self._heartbeat_interval_s is not None:
            return self._heartbeat_interval_s
        idle = self._session.idle_timeout if self._session is not None else None
        idle_s = (idle.seconds + idle.nanos / 1e9) if idle is not None else 0.0
        return max(0.1, idle_s / 3)

    # -- calls ----------------------------------------------------------------

    def append(self, type, payload=None, *, source=None, performer_id="", event_time=None, record_id=None):
        """Appends an event (counts as activity) and returns it (a SessionEvent with seq and cursor)."""
        response = self._guard(
            lambda: self._client.append_session_event(
                self.session_id,
                type,
                payload,
                source=source or self.source,
                performer_id=performer_id,
                event_time=event_time,
                record_id=record_id,
            )
        )
        with self._cond:
            # An append succeeds only on an ACTIVE session (another client may have resumed it).
            self._paused = False
            self._reschedule()
        return response.event

    def heartbeat(self):
        """Sends one heartbeat now; returns the Session with its new expire_time."""
        session = self._guard(lambda: self._client.heartbeat_session(self.session_id))
        with self._cond:
            self._session = session
            self.heartbeats += 1
            self._reschedule()
        return session

    def pause(self, *, record_id=None):
        """Pauses the session (its idle clock stops) and the handle's heartbeats."""
        session = self._guard(lambda: self._client.pause_session(self.session_id, record_id=record_id))
        with self._cond:
            self._session = session
            self._paused = True
            self._cond.notify_all()
        return session

    def resume(self, *, record_id=None):
        """Resumes the session (its idle clock restarts now) and the handle's heartbeats."""
        session = self._guard(lambda: self._client.resume_session(self.session_id, record_id=record_id))
        with self._cond:
            self._session = session
            self._paused = False
            self._reschedule()
        return session

    def update(self, *, metadata=None, is_training_data=None, record_id=None):
        """Replaces metadata and/or sets is_training_data (allowed after the end too); returns the Session."""
        session = self._client.update_session(
            self.session_id, metadata=metadata, is_training_data=is_training_data, record_id=record_id
        )
        with self._cond:
            self._session = session
        return session

    def end(self, *, performer_id="", event_time=None):
        """Ends the session (EndSession) once; later calls return the same SessionEnd.

        If the call fails (after retries), the next end() tries again with the same record_id.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        with self._end_lock:
            if self._end is not None:
                return self._end
            response = self._client.end_session(
                self.session_id, performer_id=performer_id, event_time=event_time, record_id=self._end_record_id
            )
            end = SessionEnd(
                response.session,
                response.event,
                response.session.end_reason,
                response.event.record_id == self._end_record_id,
            )
            with self._cond:
                self._session = response.session
            self._finish(end)
            return end

    # -- internals ------------------------------------------------------------

    def _guard(self, call):
        """Runs a call on the session; on SESSION_ENDED / SESSION_NOT_FOUND learns the end, on SESSION_PAUSED the pause."""
        try:
            return call()
        except SessionManagerError as error:
            if error.reason == "SESSION_ENDED" or (
                error.code == grpc.StatusCode.NOT_FOUND and error.reason == "SESSION_NOT_FOUND"
            ):
                self._ended_under()
            elif error.reason == "SESSION_PAUSED":
                with self._cond:
                    self._paused = True
                    self._cond.notify_all()
            raise

    def _ended_under(self):
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._end is not None:
            return
        try:
            self.end()
        except SessionManagerError:
            self._finish(SessionEnd(self._session, None, session_pb2.END_REASON_UNSPECIFIED, False))

    def _finish(self, end):
        with self._cond:
            if self._end is not None:
                return
            self._end = end
            self._closing = True
            self._cond.notify_all()
        if self._on_ended is not None:
            self._on_ended(end)

    def _reschedule(self):
        """The next heartbeat is due a period from now (call with _cond held)."""
        self._next_beat = time.monotonic() + self.heartbeat_interval_s
        self._cond.notify_all()

    def _run(self):
        """The heartbeat thread: beats when due, waits while paused, exits when the session ends or is ending."""
        while True:
            with self._cond:
                while True:
                    if self._closing or self._end is not None:
                        return
                    if self._paused:
                        self._cond.wait()
                        continue
                    remaining = self._next_beat - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                # Not due again before a period has passed, whatever this beat does.
                self._next_beat = time.monotonic() + self.heartbeat_interval_s
            try:
                self.heartbeat()
            except SessionManagerError as error:
                if self._end is None and not self._paused and error.reason != "SESSION_ENDED":
                    if self._on_heartbeat_error is not None:
                        try:
                            self._on_heartbeat_error(error)
                        except Exception:
                            pass
            except Exception:  # never let the thread die silently on a callback bug; try again next period
                pass
