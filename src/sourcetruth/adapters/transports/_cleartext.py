"""Credentials and the network: the one rule every transport keeps, in one place.

A transport that would send a password, a token or a key unencrypted is
refused when it is made (a :class:`~sourcetruth.exceptions.UsageError`,
before anything is sent), unless the server is on this machine (a loopback
address: nothing crosses a network) or the caller accepts the risk with
``allow_insecure=True`` (in ``policy.toml``, ``allow_insecure = true`` in the
transport's table). Accepted, it is still logged as a warning.

Package-private: the transports import it; nothing else does.
"""

from __future__ import annotations

import logging
from typing import Final

from sourcetruth.adapters._util import is_loopback
from sourcetruth.exceptions import UsageError

__all__ = ["ALLOW_INSECURE", "refuse_cleartext"]

_log = logging.getLogger(__name__)

#: The option that accepts credentials in clear to another machine, the same in every transport.
ALLOW_INSECURE: Final = "allow_insecure"


def refuse_cleartext(
    host: str, *, what: str, fix: str, shown_as: str, allow_insecure: bool
) -> None:
    """Refuse *what* (the credentials) in clear to *host*, unless loopback or *allow_insecure*.

    *fix* says how to encrypt instead; *shown_as* names the server in the
    warning logged when the risk is accepted (never a credential). The
    message names neither the host nor any secret.
    """
    if is_loopback(host):
        return
    if allow_insecure is True:
        _log.warning(
            "%s: %s cross the network unencrypted (%s=True accepted the risk)",
            shown_as,
            what,
            ALLOW_INSECURE,
        )
        return
    msg = (
        f"{what} would cross the network unencrypted: {fix}. To accept that risk, pass "
        f"{ALLOW_INSECURE}=True (in policy.toml, {ALLOW_INSECURE} = true in the transport's table)"
    )
    raise UsageError(msg)
