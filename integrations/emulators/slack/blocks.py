"""A light Block Kit validator.

Slack rejects whole messages with `invalid_blocks` when a limit is broken; the
limits below are the ones a bot realistically hits (long sections, too many
blocks, duplicate action ids), so the emulator fails the same calls Slack would.
"""

from __future__ import annotations

from typing import Any

KNOWN_BLOCKS = {
    "section", "divider", "header", "context", "actions", "image", "input",
    "rich_text", "file", "video", "markdown",
}
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _check_element(el: Any, where: str, action_ids: set[str], errors: list[str]) -> None:
    if not isinstance(el, dict) or "type" not in el:
        errors.append(f"{where}: element must be an object with a type")
        return
    action_id = el.get("action_id")
    if action_id is not None:
        if len(str(action_id)) > 255:
            errors.append(f"{where}: action_id longer than 255 characters")
        if action_id in action_ids:
            errors.append(f"{where}: duplicate action_id {action_id!r}")
        action_ids.add(str(action_id))
    if el["type"] == "button":
        if len(_text_of(el.get("text"))) > 75:
            errors.append(f"{where}: button text longer than 75 characters")
        if len(str(el.get("value", ""))) > 2000:
            errors.append(f"{where}: button value longer than 2000 characters")
        if el.get("style") not in (None, "primary", "danger"):
            errors.append(f"{where}: button style must be primary or danger")


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Problems with `blocks`, in the style of Slack's response_metadata messages."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        # Slack wants action_ids unique within their block, not the whole message.
        action_ids: set[str] = set()
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
            errors.append(f"{where}: unknown or missing block type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"{where}: duplicate block_id {block_id!r}")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{where}: section needs text or fields")
            if len(_text_of(block.get("text"))) > 3000:
                errors.append(f"{where}/text: must be less than 3001 characters")
            fields = block.get("fields") or []
            if len(fields) > 10:
                errors.append(f"{where}/fields: no more than 10 items allowed")
            for j, field in enumerate(fields):
                if len(_text_of(field)) > 2000:
                    errors.append(f"{where}/fields/{j}: must be less than 2001 characters")
            if "accessory" in block:
                _check_element(block["accessory"], f"{where}/accessory", action_ids, errors)
        elif kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"{where}/text: header text must be plain_text")
            elif len(_text_of(text)) > 150:
                errors.append(f"{where}/text: must be less than 151 characters")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > 25:
                errors.append(f"{where}/elements: must hold 1 to 25 items")
            for j, el in enumerate(elements):
                _check_element(el, f"{where}/elements/{j}", action_ids, errors)
        elif kind == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > 10:
                errors.append(f"{where}/elements: must hold 1 to 10 items")
    return errors


def find_element(blocks: list[dict[str, Any]],
                 action_id: str) -> tuple[str | None, dict[str, Any]] | None:
    """(block_id, element) of the interactive element with this action_id, if any."""
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if "accessory" in block:
            candidates.append(block["accessory"])
        for el in candidates:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block.get("block_id"), el
    return None
