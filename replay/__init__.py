"""Dead letters and safe replay: select, dry-run, approve (four eyes where money
moves), re-deliver at a bounded pace, and keep a hash-chained audit trail."""

from ._access import LineageAccess
from ._api import replay_router
from ._audit import AuditEntry, AuditHead, AuditVerdict, FileAuditHead, MemoryAuditHead
from ._cli import register_cli
from ._corrections import apply_corrections
from ._errors import ApprovalRefused, NotFound, ReplayError, StateConflict
from ._models import (
    Corrections,
    DeadLetterState,
    ItemState,
    PlanItem,
    ReplayPlan,
    ReplayState,
    Selection,
)
from ._schema import REPLAY_DDL
from ._service import ReplayService, TargetProbe

__all__ = [
    "REPLAY_DDL",
    "ApprovalRefused",
    "AuditEntry",
    "AuditHead",
    "AuditVerdict",
    "Corrections",
    "DeadLetterState",
    "FileAuditHead",
    "ItemState",
    "LineageAccess",
    "MemoryAuditHead",
    "NotFound",
    "PlanItem",
    "ReplayError",
    "ReplayPlan",
    "ReplayService",
    "ReplayState",
    "Selection",
    "StateConflict",
    "TargetProbe",
    "apply_corrections",
    "register_cli",
    "replay_router",
]
