"""Channel clients: each speaks one platform's real protocol and raises Temporary/PermanentFailure or
OutcomeUnknown."""

from ticketflow.notifications.adapters.channels.base import (
    ChannelClient,
    DeliveryFailure,
    OutcomeUnknown,
    PermanentFailure,
    TemporaryFailure,
)
from ticketflow.notifications.adapters.channels.bitrix24 import Bitrix24Channel
from ticketflow.notifications.adapters.channels.express import ExpressBot, ExpressChannel
from ticketflow.notifications.adapters.channels.smtp import EmailChannel, SmtpRelay
from ticketflow.notifications.adapters.channels.webhook import WebhookChannel, WebhookEndpoint

__all__ = [
    "Bitrix24Channel",
    "ChannelClient",
    "DeliveryFailure",
    "EmailChannel",
    "ExpressBot",
    "ExpressChannel",
    "OutcomeUnknown",
    "PermanentFailure",
    "SmtpRelay",
    "TemporaryFailure",
    "WebhookChannel",
    "WebhookEndpoint",
]
