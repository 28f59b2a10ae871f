"""What kind of failure a lineage write is, so the writer knows what to do next.

    StoreError                    (tracing) the lineage store failed
    └── StoreWriteError           a batch write failed; ``kind`` says how
        kind = RESOURCE           memory, disk or a conflict: the same rows may land
                                  on a later try (retriable, after relief and a pause)
        kind = POISON             something in the rows themselves cannot be stored
                                  (a conversion, range or constraint error): retrying
                                  the same rows fails again; split the batch and
                                  dead-letter the rows that still fail alone
        kind = FATAL              DuckDB invalidated the database: the store reopens
                                  it, then the write is retried like RESOURCE

The classification reads the exception's type (DuckDB's and Arrow's), never its
message. Anything unknown counts as RESOURCE: retrying it is safe (the lineage
dedupes on event ID) and dead-lettering good rows for an unknown reason is not.
"""

from __future__ import annotations

from enum import StrEnum

import duckdb
import pyarrow as pa

from tracing import StoreError

__all__ = ["StoreWriteError", "WriteErrorKind", "classify_write_error", "unbuildable"]


class WriteErrorKind(StrEnum):
    """How a failed batch write is handled (see the module docstring)."""

    RESOURCE = "resource"
    POISON = "poison"
    FATAL = "fatal"


class StoreWriteError(StoreError):
    """A batch write failed and was rolled back; ``kind`` says whether to retry or split."""

    def __init__(self, message: str, *, kind: WriteErrorKind) -> None:
        super().__init__(message)
        self.kind = kind
        # Poison rows fail again however often they are retried.
        self.retriable = kind is not WriteErrorKind.POISON


# Errors caused by the values in the batch: the same rows fail the same way again.
_POISON: tuple[type[BaseException], ...] = (
    duckdb.ConversionException,
    duckdb.OutOfRangeException,
    duckdb.ConstraintException,
    duckdb.TypeMismatchException,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    OverflowError,
)
# The database instance is unusable until it is opened again.
_FATAL: tuple[type[BaseException], ...] = (duckdb.FatalException, duckdb.InternalException)
# OutOfMemoryException, IOException, TransactionException (a COMMIT that could not
# pin a block raises this one), InterruptException and anything else: RESOURCE.
# InvalidInputException is not POISON: DuckDB also raises it for a connection left
# in a bad state, and calling good rows poison would dead-letter them.


def classify_write_error(exc: BaseException) -> WriteErrorKind:
    """The kind of a foreign error raised while writing a batch.

    >>> classify_write_error(duckdb.OutOfMemoryException("full"))
    <WriteErrorKind.RESOURCE: 'resource'>
    >>> classify_write_error(duckdb.ConversionException("bad"))
    <WriteErrorKind.POISON: 'poison'>
    """
    if isinstance(exc, StoreWriteError):
        return exc.kind
    if isinstance(exc, _FATAL):
        return WriteErrorKind.FATAL
    if isinstance(exc, _POISON):
        return WriteErrorKind.POISON
    return WriteErrorKind.RESOURCE


def unbuildable(exc: BaseException) -> StoreWriteError:
    """The error for a batch whose values do not fit the lineage columns (Arrow refused them)."""
    return StoreWriteError(f"lineage batch cannot be stored: {exc}", kind=WriteErrorKind.POISON)
