"""When and how unary calls are retried (the rules of src/client/retry.ts).

Only what cannot have been the service's answer is retried: UNAVAILABLE (a
stopping replica, an unreachable PostgreSQL: "retry with the same
record_id"), DEADLINE_EXCEEDED, and a connection that failed (grpcio reports
refused, reset and closed connections as UNAVAILABLE). Every other code is
final. Mutating calls keep their record_id across attempts, so a retry of a
call that did commit returns the original result (AIP-155).
"""

import dataclasses
import os
import random
import time

import grpc

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_record_id():
    """A ULID (26 Crockford base32 characters: 48-bit ms timestamp, 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Retries of unary calls. Times in seconds."""

    max_attempts: int = 5
    """Attempts in total, the first included; 1 turns retries off."""
    initial_delay_s: float = 0.1
    max_delay_s: float = 5.0
    attempt_timeout_s: float = 10.0
    """Each attempt's deadline (a timed-out attempt is DEADLINE_EXCEEDED and retried); 0 or None for none."""

    def __post_init__(self):
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")


def is_retryable(error):
    """Whether a unary call that failed with `error` (a SessionManagerError) may be sent again."""
    return error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or error.is_connection_error


def backoff_delay(attempt, initial_s, max_s):
    """The n-th delay (n from 1): a step doubling from initial_s up to max_s, drawn between half and all of it."""
    step = min(max_s, initial_s * (2 ** max(0, attempt - 1)))
    return step / 2 + random.random() * (step / 2)
