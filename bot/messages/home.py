"""The App Home tab."""

from __future__ import annotations

from typing import Any

from bot.catalog import Catalog
from bot.messages.help import help_message


def home_view(catalog: Catalog) -> dict[str, Any]:
    return {"type": "home", "blocks": help_message(catalog).blocks_json()}
