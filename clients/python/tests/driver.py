"""Drives session_manager_client for test/client/python-client.test.ts.

Usage: PYTHONPATH=<stubs>:clients/python python3 driver.py SCENARIO ADDRESS [ARGS...]

Prints one JSON object per line on stdout (flushed) and reads commands, one
per line, on stdin, so that the TypeScript test can act between steps (lose
a response, restart a replica, check the database). Credentials come from
the environment: SM_CREDENTIAL (an API key), SM_TOKEN_1 / SM_TOKEN_2 (JWTs).
"""

import collections
import json
import os
import sys
import threading
import time

import grpc

from session_manager_client import RetryPolicy, SessionManagerClient, SessionManagerError, session_pb2

_print_lock = threading.Lock()


def emit(**fields):
    with _print_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def read_command():
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("stdin closed")
    return line.strip()


def wait_until(predicate, timeout_s=15.0, what="a condition"):
    """Waits for a condition (polling), failing after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def error_dict(error):
    return {"code": error.code_name, "reason": error.reason, "metadata": error.metadata}


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Records every attempt: its method and the request's record_id."""

    def __init__(self):
        self.attempts = []
        self.streams = 0

    def intercept_unary_unary(self, continuation, details, request):
        method = details.method.rsplit("/", 1)[-1]
        self.attempts.append((method, getattr(request, "record_id", "")))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        self.streams += 1
        return continuation(details, request)

    def count(self, method):
        return sum(1 for m, _ in self.attempts if m == method)

    def record_ids(self, method):
        return [r for m, r in self.attempts if m == method]


FAST_RETRY = RetryPolicy(max_attempts=5, initial_delay_s=0.05, max_delay_s=0.5, attempt_timeout_s=10.0)


def client_for(address, recorder=None, credential=None, **options):
    return SessionManagerClient(
        address,
        credential=os.environ.get("SM_CREDENTIAL") if credential is None else credential,
        retry=options.pop("retry", FAST_RETRY),
        interceptors=[recorder] if recorder is not None else (),
        **options,
    )


def state_name(session):
    return session_pb2.SessionState.Name(session.state)


def end_dict(end):
    return {
        "end_reason": session_pb2.EndReason.Name(end.end_reason),
        "by_this_handle": end.by_this_handle,
        "event_id": end.event.event_id if end.event is not None else None,
        "state": state_name(end.session),
    }


# -- scenarios ------------------------------------------------------------------


def scenario_scope(address, prefix):
    """Session scopes: heartbeats keep a 3 s session alive, end on exit (also on raise), pause, ended under."""
    recorder = Recorder()
    client = client_for(address, recorder, source="py-worker")

    # A: heartbeats keep it alive; the TS test waits until the session is 6 s old (database clock).
    with client.session(user_id=f"{prefix}-alive", idle_timeout_s=3) as s:
        first = s.append("care.py.step", {"n": 1})
        emit(step="alive", session_id=s.session_id, seq=first.seq, interval_s=s.heartbeat_interval_s, source=first.source)
        assert read_command() == "continue"
        now = client.get_session(s.session_id)
        second = s.append("care.py.step", {"n": 2})
        emit(step="checked", state=state_name(now), ended=s.ended, heartbeats=s.heartbeats, seq=second.seq)
    emit(step="alive_done", ended=s.ended, end=end_dict(s.end_info), end_calls=recorder.count("EndSession"))

    # B: the body raises: the session still ends, once; the exception propagates.
    ends_before = recorder.count("EndSession")
    handle = None
    try:
        with client.session(user_id=f"{prefix}-raises", idle_timeout_s=60) as s:
            handle = s
            s.append("care.py.work", {"step": 1})
            s.update(metadata={"reviewed": False}, is_training_data=True)
            raise RuntimeError("the work failed")
    except RuntimeError as error:
        raised = str(error)
    ended_on_exit = handle.ended
    end_on_exit = end_dict(handle.end_info) if handle.end_info is not None else None
    end_calls_on_exit = recorder.count("EndSession") - ends_before
    again = handle.end()  # memoized: no second EndSession
    emit(
        step="raised",
        raised=raised,
        session_id=handle.session_id,
        ended=ended_on_exit,
        end=end_on_exit,
        same_end=again is handle.end_info,
        end_calls=end_calls_on_exit,
        end_calls_after_again=recorder.count("EndSession") - ends_before,
        training=handle.session.is_training_data,
    )

    # C: no heartbeat while paused; heartbeats again after resume.
    with client.session(user_id=f"{prefix}-paused", idle_timeout_s=1) as s:
        wait_until(lambda: s.heartbeats >= 1, what="a first heartbeat")
        s.pause()
        sent = recorder.count("HeartbeatSession")
        # Proves that no heartbeat is sent during more than three periods of 0.33 s while paused.
        time.sleep(1.2)
        during_pause = recorder.count("HeartbeatSession") - sent
        paused_state = state_name(client.get_session(s.session_id))
        s.resume()
        wait_until(lambda: recorder.count("HeartbeatSession") > sent, what="a heartbeat after resume")
        event = s.append("care.py.resumed", {"ok": True})
        emit(step="paused", during_pause=during_pause, paused_state=paused_state, seq_after=event.seq)

    # D: the session ends under the handle: ended says so, heartbeating stops, closing ends nothing twice.
    ends = []
    s = client.open_session(f"{prefix}-under", idle_timeout_s=1, on_ended=ends.append)
    wait_until(lambda: s.heartbeats >= 1, what="a first heartbeat")
    other = client_for(address)
    other.end_session(s.session_id)
    wait_until(lambda: s.ended, what="the handle to learn the end")
    wait_until(lambda: not s._thread.is_alive(), what="the heartbeat thread to stop")
    beats = recorder.count("HeartbeatSession")
    s.close()
    emit(
        step="under",
        session_id=s.session_id,
        ended=s.ended,
        end=end_dict(s.end_info),
        on_ended=len(ends),
        heartbeats_after_close=recorder.count("HeartbeatSession") - beats,
    )


def scenario_scope_restart(address, user_id):
    """A session scope whose replica goes away mid-body: each append written once, the session ended once."""
    recorder = Recorder()
    client = client_for(address, recorder, retry=RetryPolicy(max_attempts=40, initial_delay_s=0.05, max_delay_s=0.5))
    with client.session(user_id=user_id, idle_timeout_s=60) as s:
        s.append("care.py.before", {"n": 1})
        emit(step="ready", session_id=s.session_id)
        assert read_command() == "continue"
        s.append("care.py.during", {"n": 2})
        s.append("care.py.after", {"n": 3})
    emit(step="done", during_attempts=recorder.record_ids("AppendSessionEvent"))


def scenario_retry(address, prefix):
    """A lost response is retried with the same record_id and returns the original result."""
    recorder = Recorder()
    client = client_for(address, recorder)
    started = client.start_session(f"{prefix}-append")
    emit(step="ready", session_id=started.session.session_id)
    assert read_command() == "append"
    appended = client.append_session_event(started.session.session_id, "care.py.retry", {"n": 1}, source="py-test")
    emit(
        step="appended",
        event_id=appended.event.event_id,
        seq=appended.event.seq,
        record_id=appended.event.record_id,
        record_ids=recorder.record_ids("AppendSessionEvent"),
    )
    assert read_command() == "start"
    user = f"{prefix}-start"
    restarted = client.start_session(user, idle_timeout_s=60)
    emit(
        step="started",
        user_id=user,
        session_id=restarted.session.session_id,
        event_id=restarted.event.event_id,
        record_ids=recorder.record_ids("StartSession")[1:],
    )


def scenario_errors(address, prefix, dead_address):
    """The service's answers are final (one attempt) and carry reason and metadata; a dead server is retried."""
    recorder = Recorder()
    client = client_for(address, recorder)
    result = {}
    started = client.start_session(f"{prefix}-user")
    session_id = started.session.session_id

    def attempt(name, method, call):
        before = recorder.count(method)
        try:
            call()
            result[name] = {"code": "OK"}
        except SessionManagerError as error:
            result[name] = {**error_dict(error), "attempts": recorder.count(method) - before, "is_exception": isinstance(error, Exception)}

    attempt("reserved_type", "AppendSessionEvent", lambda: client.append_session_event(session_id, "session.hacked", {"x": 1}))
    attempt("invalid_request", "GetSession", lambda: client.get_session("not-a-session-id"))
    attempt("active_exists", "StartSession", lambda: client.start_session(f"{prefix}-user"))
    attempt("not_found", "GetSession", lambda: client.get_session("sess_01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    no_key = client_for(address, recorder, credential="")
    attempt("no_credential", "GetSession", lambda: no_key.get_session(session_id))
    client.end_session(session_id)
    attempt("heartbeat_ended", "HeartbeatSession", lambda: client.heartbeat_session(session_id))

    retries = []
    dead = client_for(
        dead_address,
        recorder,
        retry=RetryPolicy(max_attempts=3, initial_delay_s=0.02, max_delay_s=0.1, attempt_timeout_s=2.0),
        on_retry=lambda method, error, n, delay: retries.append([method, error.code_name, n]),
    )
    attempt("dead_server", "GetSession", lambda: dead.get_session(session_id))
    result["dead_server_retries"] = retries
    result["session_id"] = session_id
    emit(step="errors", **result)


def stop_on_command(watch):
    def run():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        watch.close()

    threading.Thread(target=run, daemon=True).start()


def scenario_watch(address, user_id):
    """Follows a user's feed across restarts; prints every event and reconnect; stops on "stop"."""
    client = client_for(address)
    watch = client.watch(
        user_id=user_id,
        from_beginning=True,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        on_reconnect=lambda error, delay: emit(reconnect=error.code_name if error is not None else None),
    )
    stop_on_command(watch)
    emit(step="watching")
    for event in watch:
        emit(event_id=event.event_id, seq=event.seq, type=event.type)
    emit(step="done", cursor=watch.cursor)


def scenario_watch_refresh(address, user_id):
    """A JWT watch whose first token expires: one refresh, then the stream resumes."""
    asked = []
    tokens = [os.environ["SM_TOKEN_1"], os.environ["SM_TOKEN_2"]]

    def credential(refresh=False):
        asked.append(refresh)
        return tokens[0] if len(asked) == 1 else tokens[1]

    client = client_for(address, credential=credential)
    watch = client.watch(
        user_id=user_id,
        frames=True,
        on_reconnect=lambda error, delay: emit(reconnect=error.code_name if error else None, reason=error.reason if error else None),
    )
    stop_on_command(watch)
    for frame in watch:
        kind = frame.WhichOneof("frame")
        if kind == "event":
            emit(event_id=frame.event.event_id)
        elif kind == "caught_up":
            emit(caught_up=True)
    emit(step="done", asked=asked)


def scenario_watch_final(address, user_id):
    """Errors retrying cannot fix end the watch at once."""
    recorder = Recorder()
    result = {}
    asked = []

    def expired(refresh=False):
        asked.append(refresh)
        return os.environ["SM_TOKEN_EXPIRED"]

    cases = [
        ("invalid_cursor", client_for(address, recorder, credential=os.environ["SM_TOKEN_2"]), {"user_id": user_id, "after": "not-a-cursor"}),
        ("other_user", client_for(address, recorder, credential=os.environ["SM_TOKEN_2"]), {"user_id": user_id + "-other"}),
        ("expired", client_for(address, recorder, credential=expired), {"user_id": user_id}),
    ]
    for name, client, options in cases:
        before = recorder.streams
        try:
            for _ in client.watch(**options):
                raise AssertionError("no frame expected")
            result[name] = {"code": "ENDED"}
        except SessionManagerError as error:
            result[name] = {**error_dict(error), "streams": recorder.streams - before}
    result["expired"]["asked"] = asked
    emit(step="final", **result)


SCENARIOS = {
    "scope": scenario_scope,
    "retry": scenario_retry,
    "scope_restart": scenario_scope_restart,
    "errors": scenario_errors,
    "watch": scenario_watch,
    "watch_refresh": scenario_watch_refresh,
    "watch_final": scenario_watch_final,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
