"""After the ack of `/flag …` and `/killswitch …`: lists and status (ephemeral), a
flag's history, and a change proposed through the one change flow (a flag's group is
found here: the application's stores say which holds it)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.catalog_flags import FlagGroup
from bot.changes.kind import ChangeRequest
from bot.deps import Deps
from bot.ids import KindName
from bot.inbound import SlashCommand
from bot.messages.base import ephemeral_error
from bot.messages.history import history_message
from bot.messages.switches import flags_message, switch_status_message, switches_message
from bot.switch_stores import closest, flag_store, kill_switches
from bot.workflow import propose
from integrations.app_flags import Flag, FlagStoreError
from integrations.kill_switches import SwitchState, SwitchStoreError

log = logging.getLogger(__name__)


async def _group_flags(deps: Deps, group: FlagGroup) -> list[Flag]:
    return await (await flag_store(deps, group)).list()


async def _all_flags(deps: Deps) -> tuple[list[tuple[str, Flag]], list[str]]:
    names = list(deps.catalog.flags)
    read = await asyncio.gather(*(_group_flags(deps, deps.catalog.flags[n]) for n in names),
                                return_exceptions=True)
    found, problems = [], []
    for name, flags in zip(names, read, strict=True):
        if isinstance(flags, FlagStoreError):
            problems.append(f"group {name}: {flags.message}")
        elif isinstance(flags, BaseException):
            raise flags
        else:
            found += [(name, flag) for flag in flags]
    return found, problems


async def flag_list(deps: Deps, filter_: str, command: SlashCommand) -> None:
    found, problems = await _all_flags(deps)
    shown = [(g, f) for g, f in found if filter_.lower() in f.name.lower()]
    last = {c.subject: c for c in reversed(await deps.changes.history_of_subjects(
        [f"{KindName.FLAG.value}:{g}/{f.name}" for g, f in shown], limit=500))}
    await deps.slack.respond(command.response_url, flags_message(
        [(g, f, last.get(f"{KindName.FLAG.value}:{g}/{f.name}")) for g, f in shown],
        problems, filter_))


async def _flag_group(deps: Deps, name: str, command: SlashCommand) -> tuple[str, str] | None:
    """(group, flag) holding `name` ("group/name" names it), or None (the user was told)."""
    if "/" in name:
        group, flag = name.split("/", 1)
        if group not in deps.catalog.flags:
            await deps.slack.respond(command.response_url, ephemeral_error(
                f"Unknown flag group `{group}`.", closest(group, deps.catalog.flags)))
            return None
        return group, flag
    found, problems = await _all_flags(deps)
    holders = sorted({g for g, f in found if f.name == name})
    if len(holders) == 1:
        return holders[0], name
    if holders:
        choices = ", ".join(f"`{g}/{name}`" for g in holders)
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"`{name}` is a flag in {len(holders)} groups.", f"Say which: {choices}."))
    elif problems:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"Couldn't find flag `{name}`: {'; '.join(problems)}.",
            "Nothing was changed. Try again in a minute."))
    else:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"Unknown flag `{name}`.", closest(name, (f.name for _, f in found))))
    return None


async def flag_change(deps: Deps, name: str, on: bool, dry_run: bool,
                      command: SlashCommand) -> None:
    held = await _flag_group(deps, name, command)
    if held is None:
        return
    group, flag = held
    services = deps.catalog.flags[group].services
    await propose.propose(deps, ChangeRequest(
        KindName.FLAG.value, services[0] if services else "",
        {"group": group, "name": flag, "on": on}, dry_run=dry_run,
        subject=f"{KindName.FLAG.value}:{group}/{flag}"), command)


async def flag_history(deps: Deps, name: str, command: SlashCommand) -> None:
    flag = name.split("/", 1)[-1]
    groups = [name.split("/", 1)[0]] if "/" in name else list(deps.catalog.flags)
    changes = await deps.changes.history_of_subjects(
        [f"{KindName.FLAG.value}:{g}/{flag}" for g in groups])
    await deps.slack.respond(command.response_url, history_message(f"flag {name}", changes))


async def _group_switches(deps: Deps, group: str) -> list[SwitchState]:
    switches = kill_switches(deps.catalog.killswitches[group])
    try:
        return await switches.scan()
    finally:
        await switches.close()


async def switch_list(deps: Deps, command: SlashCommand) -> None:
    rows: list[tuple[str, SwitchState, bool]] = []
    problems: list[str] = []
    for group, section in deps.catalog.killswitches.items():
        try:
            found = {s.name: s for s in await _group_switches(deps, group)}
        except SwitchStoreError as exc:
            problems.append(f"group {group}: {exc}")
            continue
        rows += [(group, found.get(n, SwitchState(n, None)), True) for n in section.switches]
        rows += [(group, s, False) for n, s in sorted(found.items())
                 if n not in section.switches]
    await deps.slack.respond(command.response_url, switches_message(rows, problems))


async def switch_status(deps: Deps, group: str, name: str, command: SlashCommand) -> None:
    try:
        switches = kill_switches(deps.catalog.killswitches[group])
        try:
            state = await switches.get(name)
        finally:
            await switches.close()
    except SwitchStoreError as exc:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"Couldn't read kill switch `{name}`: {exc}", "Try again in a minute."))
        return
    await deps.slack.respond(command.response_url, switch_status_message(group, state))


async def switch_change(deps: Deps, group: str, name: str, on: bool, dry_run: bool,
                        command: SlashCommand) -> None:
    services = deps.catalog.killswitches[group].services
    await propose.propose(deps, ChangeRequest(
        KindName.KILL_SWITCH.value, services[0] if services else "",
        {"group": group, "name": name, "on": on}, dry_run=dry_run,
        subject=f"{KindName.KILL_SWITCH.value}:{group}/{name}"), command)


async def answer(deps: Deps, intent: str, fields: dict[str, Any],
                 command: SlashCommand) -> None:
    """The `switches` job: the intent (bot/switch_intents.py) by its name."""
    if intent == "FlagListIntent":
        await flag_list(deps, str(fields["filter"]), command)
    elif intent == "FlagHistoryIntent":
        await flag_history(deps, str(fields["name"]), command)
    elif intent == "FlagChangeIntent":
        await flag_change(deps, str(fields["name"]), bool(fields["on"]),
                          bool(fields["dry_run"]), command)
    elif intent == "SwitchListIntent":
        await switch_list(deps, command)
    elif intent == "SwitchStatusIntent":
        await switch_status(deps, str(fields["group"]), str(fields["name"]), command)
    elif intent == "SwitchChangeIntent":
        await switch_change(deps, str(fields["group"]), str(fields["name"]),
                            bool(fields["on"]), bool(fields["dry_run"]), command)
    else:
        log.error("switches job: unknown intent %s", intent)
