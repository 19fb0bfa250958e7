"""Env: change one environment variable of a Cloud Run service (the runbook's
"Configuration Rollback"), as a new revision.

`/rollback env api KEY=value`, `/rollback env api KEY --from 00014-def` (that
revision's value) and `/rollback env api KEY --unset`. (`/rollback env api [KEY]`,
which only shows values, is bot/env_view.py.) Values of secret-looking keys are
masked in every output (`bot.masking`); a key that comes from Secret Manager is a
secret reference, changed with the secret kind, never as a plain value.

spec: {cloud_run_service, region, key, and value | from_revision | unset}. With
`--from`, the value is read from that revision when applied: it is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bot.catalog import Catalog
from bot.changes.kind import ChangeRequest, Usage
from bot.changes.kinds import cloud_run_common as common
from bot.changes.kinds.template import TemplateKind
from bot.deps import Deps
from bot.ids import KindName
from bot.masking import Masker
from bot.parsing import CommandError, resolve_revision, shorten
from bot.plans import CheckItem, PlanError, cloud_run_problem
from integrations.cloud_run import EnvVar, ServiceSnapshot, TemplateEdit
from integrations.google_retry import GoogleCallError

SUBCOMMAND = "env"
FROM, UNSET = "--from", "--unset"
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def masker(deps: Deps) -> Masker:
    return Masker(deps.catalog.masking.secret_env_patterns)


class EnvKind(TemplateKind):
    name = KindName.ENV.value
    subcommand = SUBCOMMAND
    options: Mapping[str, bool] = MappingProxyType({FROM: True, UNSET: False})

    def usage(self) -> Sequence[Usage]:
        return (
            Usage("/rollback env <service>", "the env keys whose value differs across the "
                                             "last 10 revisions"),
            Usage("/rollback env <service> <KEY>", "KEY's value in each revision (masked)"),
            Usage("/rollback env <service> <KEY>=<value>", "set one env var (a new revision)"),
            Usage(f"/rollback env <service> <KEY> {FROM} <revision>",
                  "set it back to that revision's value"),
            Usage(f"/rollback env <service> <KEY> {UNSET}", "remove it"),
        )

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        example = f"`/rollback env {service} LOG_LEVEL=info`"
        if len(args) != 1:
            return CommandError(
                f"`env` takes one KEY=value or KEY (got `{shorten(' '.join(args))}`).",
                f"For example {example}, `/rollback env {service} LOG_LEVEL {FROM} 00014-def` "
                f"or `/rollback env {service} LOG_LEVEL {UNSET}`. A value is one word.")
        key, has_value, value = args[0].partition("=")
        if not KEY.match(key):
            return CommandError(f"`{shorten(key)}` is not an environment variable name.",
                                "Names are letters, digits and `_`, not starting with a digit.")
        given = [bool(has_value), FROM in options, UNSET in options]
        if given.count(True) != 1:
            return CommandError(
                f"Say what `{key}` becomes: one of `{key}=value`, `{key} {FROM} <revision>` "
                f"or `{key} {UNSET}`.", f"For example {example}.")
        args_out: dict[str, Any] = {"key": key}
        if has_value:
            args_out["value"] = value
        elif UNSET in options:
            args_out["unset"] = True
        else:
            revision = resolve_revision(catalog, service, (options[FROM] or "").lower())
            if isinstance(revision, CommandError):
                return revision
            args_out["from_revision"] = revision
        return ChangeRequest(self.name, service, args_out)

    # --- what TemplateKind asks of it -------------------------------------------------

    async def wanted(self, deps: Deps, request: ChangeRequest,
                     snapshot: ServiceSnapshot) -> dict[str, Any] | PlanError:
        args, service = request.args, request.service
        key = str(args["key"])
        current = snapshot.template.env_value(key)
        keys = ", ".join(f"`{e.name}`" for e in snapshot.template.env) or "none"
        if current is None and not args.get("from_revision"):
            return PlanError(f"`{service}` has no env var `{key}`.",
                             f"Its keys: {keys}. rollbot changes config back; it does not "
                             "add new variables.")
        if current is not None and current.secret is not None:
            return PlanError(
                f"`{key}` comes from Secret Manager ({masker(deps).show(current)}).",
                "Secret references are rolled back with `/rollback secret`, never as a "
                "plain value.")
        wanted: dict[str, Any] = {"key": key}
        if "value" in args:
            wanted["value"] = str(args["value"])
        elif args.get("unset"):
            wanted["unset"] = True
        else:
            source = await self._from(deps, request, snapshot, key)
            if isinstance(source, PlanError):
                return source
            wanted.update(source)
        return wanted

    async def _from(self, deps: Deps, request: ChangeRequest, snapshot: ServiceSnapshot,
                    key: str) -> dict[str, Any] | PlanError:
        revision = str(request.args["from_revision"])
        region = deps.catalog.region_of(request.service)
        try:
            config = await deps.cloud_run.get_revision_config(snapshot.state.name, region,
                                                              revision)
        except GoogleCallError as exc:
            if exc.kind == "not_found":
                return PlanError(
                    f"Revision `{revision}` does not exist in `{snapshot.state.name}`.",
                    f"`/rollback {request.service}` lists the revisions; "
                    f"`/rollback env {request.service} {key}` shows {key} in each.")
            return cloud_run_problem(exc, request.service, snapshot.state.name)
        var = config.env_value(key)
        if var is not None and var.secret is not None:
            return PlanError(f"In `{revision}`, `{key}` comes from Secret Manager "
                             f"({masker(deps).show(var)}).",
                             "Secret references are rolled back with `/rollback secret`.")
        if var is None:
            return {"from_revision": revision, "unset": True}
        return {"from_revision": revision}

    async def resolve(self, deps: Deps, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        if not spec.get("from_revision") or spec.get("unset"):
            return spec
        config = await deps.cloud_run.get_revision_config(
            str(spec["cloud_run_service"]), str(spec["region"]), str(spec["from_revision"]))
        var = config.env_value(str(spec["key"]))
        if var is None or var.secret is not None:
            return {**spec, "unset": True}
        return {**spec, "value": var.value or ""}

    def edit(self, spec: Mapping[str, Any]) -> TemplateEdit:
        key = str(spec["key"])
        if spec.get("unset"):
            return TemplateEdit(unset_env=frozenset({key}))
        return TemplateEdit(set_env={key: str(spec["value"])})

    def words(self, deps: Deps, service: str, spec: Mapping[str, Any],
              snapshot: ServiceSnapshot) -> common.TemplateWords:
        key = str(spec["key"])
        mask = masker(deps)
        old = snapshot.template.env_value(key)
        old_text = mask.show(old) if old is not None else "(unset)"
        if spec.get("unset"):
            new_text, flags = "(unset)", f"--remove-env-vars={key}"
        elif "value" in spec:
            new_text = mask.show(EnvVar(key, str(spec["value"])))
            flags = f"--update-env-vars={key}={new_text}"
        else:
            new_text = f"its value in {spec['from_revision']}"
            flags = f"--update-env-vars={key}=<value in {spec['from_revision']}>"
        source = f" (from {spec['from_revision']})" if spec.get("from_revision") else ""
        return common.TemplateWords(
            headline=f"{service} → env {key}",
            action=f"rollback of {service}'s env {key}{source}",
            changes=(f"env {key}: {old_text} → {new_text}",),
            checked=(CheckItem("Env var identified", "ok", f"{key} (now {old_text})"),),
            command_flags=flags,
            question=f"Change {key} of {service} ({old_text} → {new_text}) as a new revision?")

    def achieved(self, spec: Mapping[str, Any], config: common.RevisionConfig) -> str | None:
        var = config.env_value(str(spec["key"]))
        if spec.get("unset"):
            return None if var is None else f"{spec['key']} is still set"
        if var is None or var.secret is not None or var.value != spec.get("value"):
            return f"{spec['key']} does not have the value asked for"
        return None
