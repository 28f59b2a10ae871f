"""The customer master: who owns which customer field, a golden record per customer
with its IDs in every system, change requests under four eyes for critical fields, a
stewardship queue for conflicts, and staged propagation (ERP, billing, CRM, support).
See docs/customer-master.md.
"""

from ._ownership import (
    DEFAULT_MATRIX,
    PROPAGATION_ORDER,
    CustomerField,
    Decision,
    FieldRule,
    OwnershipMatrix,
    Verdict,
    decide,
    fingerprint,
    load_matrix,
)
from ._service import (
    STAGE_STEPS,
    ChangeNotActionable,
    CustomerError,
    CustomerMaster,
    CustomerNotFound,
    SelfApprovalRefused,
)
from ._systems import MAPPED_FIELDS, CustomerSystems, Xref
from ._watcher import CustomerWatcher

__all__ = [
    "DEFAULT_MATRIX",
    "MAPPED_FIELDS",
    "PROPAGATION_ORDER",
    "STAGE_STEPS",
    "ChangeNotActionable",
    "CustomerError",
    "CustomerField",
    "CustomerMaster",
    "CustomerNotFound",
    "CustomerSystems",
    "CustomerWatcher",
    "Decision",
    "FieldRule",
    "OwnershipMatrix",
    "SelfApprovalRefused",
    "Verdict",
    "Xref",
    "decide",
    "fingerprint",
    "load_matrix",
]
