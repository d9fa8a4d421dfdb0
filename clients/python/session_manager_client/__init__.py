"""A Python client of session-manager (grpcio; the counterpart of src/client).

    from session_manager_client import SessionManagerClient

    client = SessionManagerClient("localhost:8080", credential=os.environ["SM_KEY"])
    with client.session(user_id="user-42", idle_timeout_s=900) as s:
        s.append("care.input.received", {"text": "hello"})
    for event in client.watch(user_id="user-42", types=["care.*"]):
        ...

The generated stubs (clients/python/generate_stubs.sh DIR) must be on PYTHONPATH.
"""

from ._client import SessionManagerClient
from ._errors import ERROR_DOMAIN, SessionManagerError
from ._retry import RetryPolicy, new_record_id
from ._session import SessionEnd, SessionHandle
from ._stubs import service_pb2, session_pb2
from ._watch import Watch, frame_cursor

__all__ = [
    "ERROR_DOMAIN",
    "RetryPolicy",
    "SessionEnd",
    "SessionHandle",
    "SessionManagerClient",
    "SessionManagerError",
    "Watch",
    "frame_cursor",
    "new_record_id",
    "service_pb2",
    "session_pb2",
]
