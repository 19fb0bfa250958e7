"""The catalog's application switches: feature-flag groups (`[flags.<group>]`) and
kill-switch groups (`[killswitches.<group>]`). They name the *application's* stores
(its flags table, its admin API, its Redis), never rollbot's own; connection strings
and keys come from environment variables (or a Secret Manager secret), not the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")  # user (U/W) or user group (S)
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
SQL_NAME = r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$"  # table or schema.table
SWITCH = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


def slack_ids(values: list[str]) -> list[str]:
    """Validate Slack user (U…/W…) or user-group (S…) ids, as every catalog list of
    people is."""
    bad = [v for v in values if not SLACK_ID.match(v)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: expected Slack user ids (U…/W…) or "
                         "user-group ids (S…)")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rules(_Strict):
    approvers: list[str] = Field(min_length=1)  # required: who may confirm (users or groups)
    requesters: list[str] = Field(default_factory=list)  # empty: anyone in the channel
    require_second_person: bool = True
    services: list[str] = Field(default_factory=list)  # whose checks follow a change

    _slack_ids = field_validator("approvers", "requesters")(slack_ids)


class FlagGroup(_Rules):
    """Feature flags in the application's database table, or behind its admin API."""

    backend: Literal["database", "api"]
    # database
    database_url_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    table: Annotated[str, Field(pattern=SQL_NAME)] = "feature_flags"
    name_column: Annotated[str, Field(pattern=SQL_NAME)] = "name"
    enabled_column: Annotated[str, Field(pattern=SQL_NAME)] = "enabled"
    updated_at_column: Annotated[str, Field(pattern=SQL_NAME)] | None = "updated_at"
    # api
    base_url_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = None
    api_key_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    api_key_secret: Annotated[str, Field(
        pattern=r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")] | None = None
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = "X-Api-Key"

    @model_validator(mode="after")
    def _backend_settings(self) -> FlagGroup:
        if self.backend == "database" and not self.database_url_env:
            raise ValueError("backend \"database\" needs database_url_env (the variable "
                             "holding the application's database URL)")
        if self.backend == "api":
            if (self.base_url_env is None) == (self.base_url is None):
                raise ValueError("backend \"api\" needs one of base_url_env or base_url")
            if self.api_key_env is not None and self.api_key_secret is not None:
                raise ValueError("give api_key_env or api_key_secret, not both")
        return self


class KillSwitchGroup(_Rules):
    """Kill switches: `kill_switch:<name>` keys in the application's Redis."""

    backend: Literal["redis"] = "redis"
    redis_url_env: Annotated[str, Field(pattern=ENV_NAME)]
    switches: list[Annotated[str, Field(pattern=SWITCH)]] = Field(min_length=1)
