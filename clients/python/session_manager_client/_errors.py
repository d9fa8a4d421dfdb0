"""Typed errors: every failed call surfaces as a SessionManagerError.

It carries the canonical gRPC code, and the `reason` and `metadata` of the
server's google.rpc.ErrorInfo detail (README, "Errors"), decoded from the
`grpc-status-details-bin` trailer, plus the google.rpc.RetryInfo delay when
the server sent one (TOO_MANY_STREAMS).
"""

import grpc
from google.protobuf import any_pb2  # noqa: F401  (registers google/protobuf/any.proto in the pool)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ._stubs import error_details_pb2

ERROR_DOMAIN = "sessionmanager"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _status_class():
    """google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }.

    google/rpc/status.proto is not among the generated stubs, so its message
    class is built from a descriptor (the same approach as test/e2e/python/client.py).
    """
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName("google.rpc.Status")
    except KeyError:
        file = descriptor_pb2.FileDescriptorProto(
            name="session_manager_client/google_rpc_status.proto",
            package="google.rpc",
            syntax="proto3",
            dependency=["google/protobuf/any.proto"],
        )
        message = file.message_type.add(name="Status")
        field = descriptor_pb2.FieldDescriptorProto
        message.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
        message.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        message.field.add(
            name="details", number=3, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED, type_name=".google.protobuf.Any"
        )
        try:
            pool.Add(file)
        except TypeError:  # pure-python / older runtimes
            pool.AddSerializedFile(file.SerializeToString())
        descriptor = pool.FindMessageTypeByName("google.rpc.Status")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


_Status = _status_class()

# Messages grpcio (C-core) gives a call whose connection failed or went away
# without an answer from the server; C-core mostly reports these as
# UNAVAILABLE, but some (e.g. "Stream removed") as UNKNOWN or INTERNAL.
_CONNECTION_MESSAGES = (
    "stream removed",
    "socket closed",
    "connection reset",
    "broken pipe",
    "failed to connect",
    "connection refused",
    "goaway",
    "rst_stream",
    "end of tcp stream",
    "transport closed",
)


class SessionManagerError(Exception):
    """A failed call.

    code        grpc.StatusCode (e.g. grpc.StatusCode.FAILED_PRECONDITION)
    code_name   its name, e.g. "FAILED_PRECONDITION"
    reason      the ErrorInfo reason ("SESSION_ENDED", "CURSOR_EXPIRED", ...),
                or "" when the error did not come from the service's handlers
                (a connection failure, or an error raised before a handler ran)
    metadata    the ErrorInfo metadata as a dict, e.g. {"session_id": ...} for
                ACTIVE_SESSION_EXISTS, {"earliest_cursor": ...} for CURSOR_EXPIRED
    retry_delay_s  the RetryInfo delay in seconds, or None
    message     the status message
    cause       the grpc.RpcError

    Branch on `code` and `reason`, never on the message.
    """

    def __init__(self, code, message="", reason="", metadata=None, retry_delay_s=None, cause=None):
        self.code = code
        self.code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        self.message = message or ""
        self.reason = reason or ""
        self.metadata = dict(metadata or {})
        self.retry_delay_s = retry_delay_s
        self.cause = cause
        super().__init__(f"{self.code_name}{' ' + self.reason if self.reason else ''}: {self.message}")

    @property
    def is_connection_error(self):
        """True when the call failed without an answer from the service (connection refused, reset, closed)."""
        if self.reason:
            return False
        if self.code == grpc.StatusCode.UNAVAILABLE:
            return True
        if self.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
            text = self.message.lower()
            return any(fragment in text for fragment in _CONNECTION_MESSAGES)
        return False

    @classmethod
    def from_rpc_error(cls, error):
        """Converts a grpc.RpcError (a failed call); a SessionManagerError is returned as is."""
        if isinstance(error, SessionManagerError):
            return error
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        reason, metadata, retry_delay_s = "", {}, None
        trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
        raw = None
        for key, value in trailers or ():
            if key == _STATUS_DETAILS_KEY:
                raw = value
        if raw is not None:
            try:
                status = _Status.FromString(raw)
            except Exception:  # a malformed trailer: keep the code and message
                status = None
            for detail in status.details if status is not None else ():
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    if info.domain == ERROR_DOMAIN or not reason:
                        reason, metadata = info.reason, dict(info.metadata)
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    retry_delay_s = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        return cls(code or grpc.StatusCode.UNKNOWN, message, reason, metadata, retry_delay_s, error)
