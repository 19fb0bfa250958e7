"""A local Slack for tests: Web API, response URLs and signed deliveries to an app."""

from .delivery import DeliveryResult
from .emulator import SlackEmulator
from .recording import SlackCall

__all__ = ["DeliveryResult", "SlackCall", "SlackEmulator"]
