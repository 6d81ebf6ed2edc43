"""Transports: what delivers a message on a channel.

The protocol is :class:`sourcetruth.protocols.Transport`. Built in:
``outbox`` (delivers nowhere, keeps what it is given), ``smtp`` (email) and
``sms`` (SMS over an HTTP gateway), each imported only when used.
"""

__all__: list[str] = []
