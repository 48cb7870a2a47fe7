"""Delivery channels for notifications.

Every notification is stored and shown in the page (the in-page channel needs nothing more). Other channels —
e-mail, SMS, a government messaging app — plug in here without touching the features that notify::

    from zhengshu.notify.channels import register_channel

    class SmsChannel:
        name = "sms"

        def send(self, notification: Notification, recipients: list[User]) -> None:
            for user in recipients:
                if user.phone:
                    gateway.send(user.phone, notification.title)

    register_channel(SmsChannel())

Channels are called by the outbox consumer of ``notification.created``, after the change that caused the
notification has committed (never inside a request), with the users the notification reaches (active users of
the organization having one of its roles, or the one addressed user). The event is written only while a channel
other than the page is registered. A channel that raises is logged and does not stop the other channels; the
notification stays in the page either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from zhengshu.notify.models import Notification
    from zhengshu.org.models import User


@runtime_checkable
class Channel(Protocol):
    name: str

    def send(self, notification: Notification, recipients: list[User]) -> None: ...


class InPageChannel:
    """The default channel: the stored row is what the page shows, so sending is nothing more."""

    name = "page"

    def send(self, notification: Notification, recipients: list[User]) -> None:
        return None


_channels: dict[str, Channel] = {}


def register_channel(channel: Channel) -> Channel:
    """Add (or replace, by name) a channel."""
    _channels[channel.name] = channel
    return channel


def unregister_channel(name: str) -> None:
    if name != InPageChannel.name:
        _channels.pop(name, None)


def channels() -> list[Channel]:
    return list(_channels.values())


def sends_beyond_page() -> bool:
    """Whether a notification has anywhere to go besides the page (its stored row)."""
    return any(name != InPageChannel.name for name in _channels)


register_channel(InPageChannel())
