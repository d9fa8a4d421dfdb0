"""An example worker (shown in README, "Clients", Python; run by test/client/python-client.test.ts).

    clients/python/generate_stubs.sh /tmp/sm-stubs
    PYTHONPATH=/tmp/sm-stubs:clients/python SM_TARGET=localhost:8080 SM_KEY=smk_... \
        python3 clients/python/example_worker.py user-42
"""

import os
import sys

from session_manager_client import SessionManagerClient, SessionManagerError

client = SessionManagerClient(
    os.environ.get("SM_TARGET", "localhost:8080"),
    credential=os.environ["SM_KEY"],  # or a callable: lambda refresh=False: fetch_token(refresh)
)
user_id = sys.argv[1] if len(sys.argv) > 1 else "user-42"

# A session scope: heartbeats itself (a third of the idle timeout) and is ended when the
# block is left, also by an exception.
with client.session(user_id=user_id, idle_timeout_s=60, source="speech-worker") as s:
    event = s.append("care.input.received", {"text": "hello"})
    print("appended seq", event.seq)
    s.pause()  # no heartbeats while paused
    s.resume()
    s.update(metadata={"channel": "voice"})
print("ended:", s.ended, s.end_info.by_this_handle)

# A subscriber: resumes by itself across disconnects; watch.cursor is where a later run continues.
with client.watch(user_id=user_id, types=["care.*", "session.ended"], from_beginning=True) as feed:
    try:
        for event in feed:
            print(event.seq, event.type, dict(event.payload))
            if event.type == "session.ended":
                break  # this example stops at the first end it sees
    except SessionManagerError as error:
        if error.reason != "CURSOR_EXPIRED":
            raise
        print("resume from", error.metadata["earliest_cursor"])
    print("stopped after", feed.cursor)
