"""App Home: the quick reference and the services rollbot knows."""

from __future__ import annotations

from typing import Any

from bot.deps import from_context
from bot.messages.home import home_view


async def app_home_opened(event: dict[str, Any], context: Any) -> None:
    deps = from_context(context)
    user_id = str(event.get("user", ""))
    if not user_id or event.get("tab", "home") != "home":
        return
    deps.dispatcher.submit(
        deps.slack.client.views_publish(user_id=user_id, view=home_view(deps.catalog)),
        name="home-publish")
