"""`rollbot shell` rendering: Block Kit and mrkdwn as terminal text, numbered buttons."""

from __future__ import annotations

import asyncio

from bot.shell.choices import ChoiceRegistry
from bot.shell.follow import Output, Transcript, is_error_text
from bot.shell.render import (
    Button,
    Directory,
    Style,
    display_width,
    mrkdwn,
    render_blocks,
    render_message,
    strip_ansi,
)

PEOPLE = Directory(users={"U0ALICE": "alice", "U0BOB": "bob"},
                   groups={"S0ONCALL": "sre-oncall"}, channels={"C0DEMO": "inc-demo"})


def _md(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


CONFIRM_BUTTON = {
    "type": "button", "text": _plain("Confirm rollback"), "action_id": "rollback.confirm",
    "value": "7", "style": "primary",
    "confirm": {"title": _plain("Confirm rollback"),
                "text": _plain("Shift 100% of api traffic to medicalcor-api-00014-def?"),
                "confirm": _plain("Roll back now"), "deny": _plain("Not yet")},
}
CANCEL_BUTTON = {"type": "button", "text": _plain("Cancel"), "action_id": "rollback.cancel",
                 "value": "7"}


# --- mrkdwn -------------------------------------------------------------------------


def test_mentions_groups_and_channels_become_names() -> None:
    text = "Ask <@U0BOB>, <!subteam^S0ONCALL> or <!subteam^S0OPS|@ops> in <#C0DEMO>; <!here>"
    assert mrkdwn(text, PEOPLE) == "Ask @bob, @sre-oncall or @ops in #inc-demo; @here"


def test_unknown_ids_stay_readable() -> None:
    assert mrkdwn("<@U0DAVE> and <@U0ERIN|erin>", PEOPLE) == "@U0DAVE and @erin"


def test_links_show_label_and_url() -> None:
    text = "See <https://example.test/run_book|the runbook> or <https://status.test>"
    assert mrkdwn(text) == "See the runbook (https://example.test/run_book) or https://status.test"


def test_bold_italic_strike_are_dropped_and_code_kept() -> None:
    text = "*Rollback of api → `medicalcor-api-00014-def`* · _now_ ~never~ snake_case_name"
    assert mrkdwn(text) == ("Rollback of api → `medicalcor-api-00014-def` · now never "
                            "snake_case_name")


def test_code_is_left_alone() -> None:
    assert mrkdwn("`*not bold* <@U0BOB> :warning:`", PEOPLE) == "`*not bold* <@U0BOB> :warning:`"


def test_code_block_becomes_indented_lines() -> None:
    text = "*If rollbot is down, run by hand:*\n```gcloud run services update-traffic api```"
    assert mrkdwn(text) == ("If rollbot is down, run by hand:\n"
                            "    gcloud run services update-traffic api")


def test_emoji_codes_and_entities() -> None:
    assert mrkdwn(":warning: a &lt;b&gt; &amp; c :x: at 10:25:28 :unknown:") == (
        "⚠️ a <b> & c ❌ at 10:25:28 :unknown:")


def test_color_only_when_asked() -> None:
    assert "\x1b[" not in mrkdwn("*bold* `code`")
    colored = mrkdwn("*bold* `code`", style=Style(color=True))
    assert "\x1b[1mbold\x1b[0m" in colored
    assert strip_ansi(colored) == "bold `code`"


def test_display_width_counts_wide_emoji_twice() -> None:
    assert display_width("✅ ok") == 5
    assert display_width("\x1b[1mab\x1b[0m") == 2


# --- blocks -------------------------------------------------------------------------


def test_header_is_underlined() -> None:
    rendered = render_blocks([{"type": "header", "text": _plain("Rollback plan: api")}])
    assert rendered.lines == ["Rollback plan: api", "─" * len("Rollback plan: api")]


def test_section_text_and_fields_two_per_line() -> None:
    block = {"type": "section", "text": _md("*Plan*"), "fields": [
        _md("*Serving now*\n`a` 100%"), _md("*Will serve*\n`b` 100%"), _md("*Third*")]}
    lines = render_blocks([block]).lines
    assert lines[0] == "Plan"
    assert lines[1].startswith("Serving now") and lines[1].endswith("Will serve")
    assert lines[2].startswith("`a` 100%") and lines[2].endswith("`b` 100%")
    assert lines[1].index("Will serve") == lines[2].index("`b` 100%")  # aligned columns
    assert lines[3] == "Third"


def test_wide_fields_are_stacked() -> None:
    wide = "x" * 60
    lines = render_blocks([{"type": "section", "fields": [_md(wide), _md("right")]}]).lines
    assert lines == [wide, "right"]


def test_context_divider_image_and_unknown_blocks() -> None:
    lines = render_blocks([
        {"type": "context", "elements": [_md("#1 · requested by <@U0ALICE>"),
                                         {"type": "image", "alt_text": "logo",
                                          "image_url": "https://x.test/i.png"}]},
        {"type": "divider"},
        {"type": "image", "alt_text": "graph", "image_url": "https://x.test/g.png"},
        {"type": "video"},
    ], PEOPLE).lines
    assert lines[0] == "› #1 · requested by @alice  [image: logo]"
    assert lines[1].startswith("───")
    assert lines[2:] == ["[image: graph]", "[video block]"]


def test_buttons_are_numbered_choices() -> None:
    rendered = render_blocks([
        {"type": "section", "text": _md("*medicalcor-api-00014-def*"),
         "accessory": {"type": "button", "text": _plain("Roll back to this"),
                       "action_id": "revisions.roll_back_to", "value": "x"}},
        {"type": "actions", "elements": [CONFIRM_BUTTON, CANCEL_BUTTON]},
    ])
    assert rendered.lines == ["medicalcor-api-00014-def", "  → [1] Roll back to this",
                              "[2] Confirm rollback  [3] Cancel"]
    assert [b.action_id for b in rendered.buttons] == [
        "revisions.roll_back_to", "rollback.confirm", "rollback.cancel"]
    confirm = rendered.buttons[1].confirm
    assert confirm is not None and confirm.deny == "Not yet"
    assert confirm.question() == ("Confirm rollback: Shift 100% of api traffic to "
                                  "medicalcor-api-00014-def? [y/N] ")
    assert rendered.buttons[2].confirm is None


def test_message_without_blocks_renders_its_text() -> None:
    rendered = render_message({"text": ":warning: <@U0BOB> can't confirm"}, PEOPLE)
    assert rendered.lines == ["⚠️ @bob can't confirm"] and rendered.buttons == []


# --- choices ------------------------------------------------------------------------


def _buttons(*labels: str) -> list[Button]:
    return [Button(label, f"act.{i}", str(i)) for i, label in enumerate(labels, start=1)]


def test_registry_numbers_the_latest_message_with_buttons() -> None:
    registry = ChoiceRegistry()
    assert registry.get(1) is None
    registry.offer(_buttons("Roll back to this"), channel_id="C0DEMO", message_ts="1.0",
                   is_ephemeral=True, visible_to="U0ALICE")
    registry.offer(_buttons("Confirm rollback", "Cancel"), channel_id="C0DEMO",
                   message_ts="2.0")
    registry.offer([], channel_id="C0DEMO", message_ts="3.0")  # no buttons: no change
    choice = registry.get(2)
    assert choice is not None
    assert (choice.button.label, choice.message_ts, choice.is_ephemeral) == ("Cancel", "2.0",
                                                                             False)
    assert registry.get(3) is None


def test_registry_forgets_buttons_a_message_lost() -> None:
    registry = ChoiceRegistry()
    registry.offer(_buttons("Confirm rollback"), channel_id="C0DEMO", message_ts="2.0")
    assert not registry.withdraw(channel_id="C0DEMO", message_ts="9.0")
    assert registry.get(1) is not None
    assert registry.withdraw(channel_id="C0DEMO", message_ts="2.0")
    assert registry.current == []


# --- transcript ---------------------------------------------------------------------


def test_error_text() -> None:
    assert is_error_text("❌ Rollback failed") and is_error_text("⚠️ degraded")
    assert is_error_text(":warning: x") and not is_error_text("✅ Rollback verified")


async def test_wait_searches_bot_output_after_the_previous_match() -> None:
    shown: list[str] = []
    transcript = Transcript(shown.extend)
    transcript.note("alice> Rollback plan")  # the shell's own echo never matches
    transcript.add(Output(["rollbot: Rollback plan: api"]))
    assert await transcript.wait_for_text("rollback PLAN", 0.1)
    assert not await transcript.wait_for_text("Rollback plan", 0.05)  # already consumed
    later = asyncio.get_running_loop().call_later(
        0.05, transcript.add, Output(["  ↳ ✅ Rollback verified"]))
    assert await transcript.wait_for_text("Rollback verified", 2)
    later.cancel()
    assert shown[0] == "alice> Rollback plan" and transcript.errors == []
    transcript.add(Output(["❌ boom"], error=True))
    assert transcript.errors == ["❌ boom"]
