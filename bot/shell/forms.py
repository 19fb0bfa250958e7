"""The shell's `:submit TEXT` and `:close`: answering a form (a Slack modal) rollbot
opened for the acting user, and saying what came of it."""

from __future__ import annotations

from bot.shell.follow import Transcript
from bot.shell.render import Style
from bot.shell.session import ShellSession


async def submit(session: ShellSession, transcript: Transcript, style: Style, *,
                 user_id: str, user_name: str, text: str) -> None:
    result = await session.submit(text, user_id=user_id)
    if result is None:
        transcript.note("no form is open: a button that asks for one opens it")
    elif result.view_errors:
        transcript.note(*(style.red(f"✎ {error}") for error in result.view_errors.values()),
                        "(the form is still open: :submit again, or :close)")
    elif result.status != 200:
        transcript.fail(style.red(
            f"⚠ rollbot answered the form with HTTP {result.status}: {result.body[:300]}"))
    else:
        transcript.note(style.dim(f"(@{user_name} submits the form)"))


def close(session: ShellSession, transcript: Transcript, *, user_id: str) -> None:
    closed = session.close_form(user_id=user_id)
    transcript.note("(form closed)" if closed else "no form is open")
