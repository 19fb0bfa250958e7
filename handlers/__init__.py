"""Thin Slack listeners: parse, ack within 3 s, hand to bot/. No cloud calls here."""

from slack_bolt.async_app import AsyncApp

from handlers import actions, commands, home, views


def register(app: AsyncApp) -> None:
    commands.register(app)
    actions.register(app)
    home.register(app)
    views.register(app)
