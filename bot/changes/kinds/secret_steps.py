"""The secret kind's steps: what each does, how the card and thread say it, running
them in order (each a thread line and an audit event), reading them back, and the
inverse of what was done (its Undo).

A step is JSON in the change's spec: {"op": "enable"|"disable", "version"},
{"op": "pin", "service", "version"} (a new revision reading that version) or
{"op": "restore", "service", "traffic"} (an undo's split before, by revision name).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

from bot.changes.kind import Applied, ChangeFailed, FinalStep, PlanDrift
from bot.changes.kinds import cloud_run_common as common
from bot.changes.kinds.template import CHANGE_LABEL
from bot.changes.model import Change
from bot.checks import CheckKind, CheckResult
from bot.deps import Deps
from bot.messages.secrets import step_line, steps_failed
from bot.plans import PlanError, primary_revision, traffic_plain
from bot.verification import SERVING
from integrations.cloud_run import ServiceSnapshot, TemplateEdit
from integrations.google_retry import GoogleCallError
from integrations.secret_manager import SecretVersion


@dataclasses.dataclass(frozen=True)
class Words:
    target: str
    headline: str
    action: str
    will_serve: str
    lines: tuple[str, ...]
    command: str
    question: str


def where(deps: Deps, service: str) -> dict[str, str]:
    return {"cloud_run_service": deps.catalog.services[service].cloud_run_service,
            "region": deps.catalog.region_of(service)}


def pin_step(deps: Deps, service: str, snapshot: ServiceSnapshot,
             version: str) -> dict[str, Any]:
    return {"op": "pin", "service": service, "version": version,
            "cloud_run_service": deps.catalog.services[service].cloud_run_service,
            "latest": common.on_latest(snapshot.state)}


def template_warning(service: str, snapshot: ServiceSnapshot) -> str:
    """A pin builds the new revision from the service's template (its latest deploy); if
    traffic was rolled back to an older revision, the pin brings the latest deploy's
    image and config back with it: say so."""
    serving = primary_revision(snapshot.state)
    latest = snapshot.state.latest_ready_revision
    if serving is None or serving == latest:
        return ""
    return (f"{service} serves {serving}, but a new revision is built from its latest "
            f"deploy ({latest}, image {snapshot.template.image.rsplit('/', 1)[-1]}): "
            "pinning the secret brings that code back too.")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def refused(exc: GoogleCallError, secret: str, project: str) -> PlanError:
    if exc.kind == "not_found":
        return PlanError(f"Secret `{secret}` was not found in project `{project}`.",
                         "Check the name (it is case-sensitive). Nothing was changed.")
    reach = "Couldn't reach" if exc.transient else "Google refused"
    return PlanError(f"{reach} Secret Manager or Cloud Run for `{secret}`: {exc.message}",
                     "Nothing was changed. Try again in a minute.")


def _say(step: dict[str, Any], secret: str) -> str:
    op = step["op"]
    if op == "enable":
        return f"enable {secret} version {step['version']}"
    if op == "disable":
        return f"disable {secret} version {step['version']} (never destroyed)"
    if op == "pin":
        return f"pin {step['service']} to {secret} version {step['version']} (a new revision)"
    return f"restore {step['service']}'s split: {traffic_plain(step['traffic'])}"


def words(secret: str, plan_steps: list[dict[str, Any]], final: dict[str, Any] | None,
          versions: list[SecretVersion]) -> Words:
    pins = [s for s in plan_steps if s["op"] == "pin"]
    version = next((s["version"] for s in plan_steps if s["op"] in ("pin", "enable")), None)
    undo = any(s["op"] == "restore" for s in plan_steps)
    target = f"{secret} version {version}" if version else f"{secret}: the state before"
    lines = [f"{i}. {_upper_first(_say(s, secret))}" for i, s in enumerate(plan_steps, 1)]
    if pins:
        lines.append(f"{len(lines) + 1}. Verify " + ", ".join(s["service"] for s in pins))
    if final is not None:
        lines.append(f"{len(lines) + 1}. Then, after a second confirmation in the thread: "
                     f"{_say(final, secret)}")
    commands = []
    for s in [*plan_steps, *([final] if final else [])]:
        if s["op"] in ("enable", "disable"):
            commands.append(f"gcloud secrets versions {s['op']} {s['version']} "
                            f"--secret={secret}")
        elif s["op"] == "pin":
            commands.append(f"gcloud run services update {s['cloud_run_service']} "
                            f"--update-secrets=<VAR>={secret}:{s['version']}")
    services = ", ".join(s["service"] for s in pins)
    if undo:
        headline, action = f"secret {secret} → as before", f"undo of the {secret} rollback"
    elif pins:
        headline = f"secret {secret} → version {version}"
        action = f"rollback of secret {secret} to version {version} in {services}"
    else:
        headline, action = (f"secret {secret} → enable version {version}",
                            f"re-enabling {secret} version {version}")
    will_serve = (f"{services}: a new revision each, reading {secret} version {version}"
                  if pins else "the same revisions; only the secret's version states change")
    question = _upper_first("; ".join(_say(s, secret) for s in plan_steps)) + "?"
    return Words(target, headline, action, will_serve, tuple(lines),
                 " && ".join(commands) or "(see the steps above)", question)


# --- running ------------------------------------------------------------------------

def _service_change(change: Change, service: str) -> Change:
    """The change as one service's template update sees it (its own spec and before)."""
    before = change.before["services"][service]
    return dataclasses.replace(
        change, subject=service, service=service, before=before,
        spec={"cloud_run_service": before["cloud_run_service"], "region": before["region"]})


async def _audit(deps: Deps, change: Change, action: str, details: dict[str, Any]) -> None:
    await deps.audit.record(actor=change.confirmed_by or "rollbot", action=action,
                            service=change.service, change_id=change.id,
                            details={"secret": change.spec["secret"], **details})


async def _pin(deps: Deps, change: Change, step: dict[str, Any]) -> str:
    sub = _service_change(change, step["service"])
    name = f"{sub.spec['cloud_run_service']}-rb-{change.id}"
    secret = str(change.spec["secret"])
    await common.update_once(
        deps, sub, None,
        applied=lambda snapshot: snapshot.template.revision == name,
        drifted=lambda snapshot: common.drift(sub, snapshot, template=True),
        send=lambda snapshot: deps.cloud_run.update_service(
            snapshot, edit=TemplateEdit(secret_versions={secret: str(step["version"])}),
            revision_name=name, labels={CHANGE_LABEL: str(change.id)},
            **common.traffic_rule(snapshot, name)))
    await _audit(deps, change, "secret_pinned", {"service": step["service"],
                                                 "version": step["version"], "revision": name})
    return name


async def _restore(deps: Deps, change: Change, step: dict[str, Any]) -> None:
    sub = _service_change(change, step["service"])
    wanted = {str(k): int(v) for k, v in step["traffic"].items()}
    await common.update_once(
        deps, sub, None, applied=lambda snapshot: snapshot.state.serving() == wanted,
        drifted=lambda snapshot: None,
        send=lambda snapshot: deps.cloud_run.update_service(snapshot, traffic=wanted))
    await _audit(deps, change, "secret_pinned", {"service": step["service"],
                                                 "restored": wanted})


async def _one(deps: Deps, change: Change, step: dict[str, Any]) -> str | None:
    """Run one step (safe to repeat); the revision a pin made."""
    assert deps.secrets is not None
    secret = str(change.spec["secret"])
    if step["op"] == "enable":
        await deps.secrets.enable_version(secret, str(step["version"]))
        await _audit(deps, change, "secret_version_enabled", {"version": step["version"]})
    elif step["op"] == "disable":
        await deps.secrets.disable_version(secret, str(step["version"]))
        await _audit(deps, change, "secret_version_disabled", {"version": step["version"]})
    elif step["op"] == "pin":
        return await _pin(deps, change, step)
    else:
        await _restore(deps, change, step)
    return None


async def _preflight(deps: Deps, change: Change, plan_steps: list[dict[str, Any]]) -> None:
    """Before step 1: has any service to pin moved since the plan (another deploy)?
    Then nothing is changed at all (PlanDrift), not even the enable."""
    for step in plan_steps:
        if step["op"] != "pin":
            continue
        sub = _service_change(change, step["service"])
        snapshot = await deps.cloud_run.read_service(*common.spec_service(sub))
        if snapshot.template.revision == f"{sub.spec['cloud_run_service']}-rb-{change.id}":
            continue  # pinned already by this change (resumed after a restart)
        moved = common.drift(sub, snapshot, template=True)
        if moved:
            raise PlanDrift(f"{step['service']}: {moved}")


async def run(deps: Deps, change: Change) -> Applied:
    """Every step in order, each said in the thread; the first failure stops there and
    says what was done, what failed and what was not done."""
    began = time.monotonic()
    plan_steps: list[dict[str, Any]] = list(change.spec["steps"])
    try:
        await _preflight(deps, change, plan_steps)
    except GoogleCallError as exc:
        raise ChangeFailed(f"Cloud Run could not be read: {exc.message}", report=steps_failed(
            str(change.spec["secret"]), [], "read the services before step 1", exc.message,
            [_say(s, str(change.spec["secret"])) for s in plan_steps]),
            unchanged=True) from exc
    secret = str(change.spec["secret"])
    done: list[dict[str, Any]] = []
    revisions: dict[str, str] = {}
    for i, step in enumerate(plan_steps):
        try:
            revision = await _one(deps, change, step)
        except (GoogleCallError, PlanDrift) as exc:
            error = exc.message if isinstance(exc, GoogleCallError) else exc.what
            if not done and isinstance(exc, PlanDrift):
                raise
            report = steps_failed(secret, [_say(s, secret) for s in done],
                                  _say(step, secret), error,
                                  [_say(s, secret) for s in plan_steps[i + 1:]])
            raise ChangeFailed(f"step {i + 1} ({_say(step, secret)}) failed: {error}",
                               report=report, unchanged=not done,
                               after={"done": done, "revisions": revisions,
                                      "traffic": change.before.get("traffic")}) from exc
        done.append(step)
        if revision:
            revisions[step["service"]] = revision
        await _post(deps, change, step_line(i + 1, len(plan_steps), _say(step, secret)))
    check = await read_back(deps, dataclasses.replace(
        change, after={"done": done, "revisions": revisions}), began=began)
    traffic = change.before.get("traffic")
    if change.service in revisions:
        traffic = {revisions[change.service]: 100}
    return Applied({"done": done, "revisions": revisions, "traffic": traffic}, check)


async def _post(deps: Deps, change: Change, message: Any) -> None:
    with contextlib.suppress(Exception):  # a lost line must not stop the steps (audited)
        await deps.slack.post(change.channel_id, message, thread_ts=change.thread_ts)


async def read_back(deps: Deps, change: Change, *, began: float | None = None) -> CheckResult:
    """Each service a step touched serves what the step asked (a fresh read)."""
    began = time.monotonic() if began is None else began
    after = change.after or {}
    revisions: dict[str, str] = after.get("revisions", {})
    problems, seen = [], []
    for step in after.get("done", change.spec["steps"]):
        if step["op"] not in ("pin", "restore"):
            continue
        sub = _service_change(change, step["service"])
        state, error = await common.read_state(deps, sub)
        wanted = ({revisions.get(step["service"], "?"): 100} if step["op"] == "pin"
                  else {str(k): int(v) for k, v in step["traffic"].items()})
        serving = state.serving() if state else None
        if serving is None:
            problems.append(f"{step['service']}: could not read Cloud Run ({error})")
        elif serving != wanted and not (step.get("latest") and step["op"] == "pin"):
            problems.append(f"{step['service']}: {traffic_plain(serving)}, but "
                            f"{traffic_plain(wanted)} was asked for")
        else:
            seen.append(f"{step['service']}: {traffic_plain(serving)}")
    detail = "; ".join(problems or seen) or "no service to read back"
    return CheckResult(name=SERVING, url="", ok=not problems, status=None, detail=detail,
                       elapsed_ms=(time.monotonic() - began) * 1000, kind=CheckKind.CLOUD_RUN)


# --- undo and the held step ------------------------------------------------------------

def inverse(change: Change) -> list[dict[str, Any]]:
    """What reverses what was done, last first: a held disable enabled again, each pin
    restored to its split before, a version step 1 enabled disabled again."""
    after = change.after or {}
    undo: list[dict[str, Any]] = []
    final = change.spec.get("final")
    if final and after.get("final_done"):
        undo.append({"op": "enable", "version": final["version"]})
    for step in reversed(after.get("done", [])):
        if step["op"] == "pin":
            before = change.before["services"][step["service"]]
            undo.append({"op": "restore", "service": step["service"],
                         "traffic": before["traffic"]})
        elif step["op"] == "enable":
            undo.append({"op": "disable", "version": step["version"]})
        elif step["op"] == "disable":
            undo.append({"op": "enable", "version": step["version"]})
    return undo


def final_step(change: Change) -> FinalStep | None:
    final = change.spec.get("final")
    if not final:
        return None
    secret, version = change.spec["secret"], final["version"]
    return FinalStep(
        label=f"Disable version {version}",
        question=f"Disable {secret} version {version} now? (It is not destroyed: an undo "
                 "can enable it again.)",
        pending=f"{secret} version {version} is still enabled: disable it with the "
                "button in the thread once you are sure",
        done=bool((change.after or {}).get("final_done")))


async def run_final(deps: Deps, change: Change, actor: str) -> dict[str, Any]:
    """The held disable, by the approver who clicked; the change's `after` with it."""
    final = change.spec["final"]
    assert deps.secrets is not None
    await deps.secrets.disable_version(str(change.spec["secret"]), str(final["version"]))
    await deps.audit.record(actor=actor, action="secret_version_disabled",
                            service=change.service, change_id=change.id,
                            details={"secret": change.spec["secret"],
                                     "version": final["version"], "second_confirmation": True})
    return {**(change.after or {}), "final_done": True, "final_by": actor}
