"""The control API (FastAPI): the app factory, role-checked routes, problem
details and the documentation helpers every room's router uses.

The package root (:mod:`collector`) stays light; what needs FastAPI is imported
from here.
"""

from ._api import create_app
from ._api_docs import MAX_OFFSET, IsoDateTime, not_found, ok, responses
from ._auth import ControlRoute, RoleCheck, TokenStore, load_tokens, require_role
from ._explore import explore_router
from ._metrics import Metrics
from ._problem import PROBLEM_JSON, Problem, ProblemField, install_problem_handlers
from ._schemas_api import schemas_router

__all__ = [
    "MAX_OFFSET",
    "PROBLEM_JSON",
    "ControlRoute",
    "IsoDateTime",
    "Metrics",
    "Problem",
    "ProblemField",
    "RoleCheck",
    "TokenStore",
    "create_app",
    "explore_router",
    "install_problem_handlers",
    "load_tokens",
    "not_found",
    "ok",
    "require_role",
    "responses",
    "schemas_router",
]
