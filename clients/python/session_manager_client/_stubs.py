"""The generated stubs (see clients/python/generate_stubs.sh), imported from PYTHONPATH."""

try:
    from google.rpc import error_details_pb2
    from sessionmanager.v1 import session_manager_service_pb2 as service_pb2
    from sessionmanager.v1 import session_manager_service_pb2_grpc as service_grpc
    from sessionmanager.v1 import session_pb2
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "session_manager_client needs the generated stubs on PYTHONPATH: run "
        "clients/python/generate_stubs.sh DIR and add DIR to PYTHONPATH "
        f"({error})"
    ) from error

__all__ = ["error_details_pb2", "service_pb2", "service_grpc", "session_pb2"]
