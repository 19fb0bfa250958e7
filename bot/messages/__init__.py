"""Slack message builders: plain data in, Block Kit (slack_sdk.models.blocks) out.

Builders never do I/O; the workflow and jobs decide when and where to post.
"""

from bot.messages.base import Message, ephemeral_error

__all__ = ["Message", "ephemeral_error"]
