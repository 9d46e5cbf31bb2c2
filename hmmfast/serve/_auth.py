"""The admin token: where it comes from, and the constant-time check of a request's.

Admin endpoints (POST /v1/models, /v1/models/rollback, /v1/models/ab) need
``Authorization: Bearer <token>``. The token comes from ``--admin-token-file`` (the
file's content, surrounding whitespace stripped) or the environment variable
``HMMFAST_ADMIN_TOKEN``; with neither, the admin endpoints are off and answer 403.
"""

import hashlib
import hmac
import logging
import os
import stat

from ._errors import ServeError

ENV_VAR = "HMMFAST_ADMIN_TOKEN"
#: Shortest token accepted: a guessable token on an admin endpoint is worse than none.
MIN_LENGTH = 16

log = logging.getLogger("hmmfast.serve")


def read_token(token_file=None, environ=None):
    """The admin token from ``token_file``, else ``$HMMFAST_ADMIN_TOKEN``, else None.

    Raises
    ------
    ValueError
        An empty or too short token.
    OSError
        The file cannot be read.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
        mode = os.stat(token_file).st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("hmmfast serve: the admin token file %s is readable by other users "
                        "(mode %o); chmod 600 it", token_file, stat.S_IMODE(mode))
        where = f"the admin token file {token_file}"
    elif environ.get(ENV_VAR):
        token, where = environ[ENV_VAR].strip(), f"${ENV_VAR}"
    else:
        return None
    check_token(token, where)
    return token


def check_token(token, where="admin_token"):
    """Refuse an empty, short or non-ASCII token (ValueError)."""
    if not isinstance(token, str) or not token.isascii() or len(token) < MIN_LENGTH or \
            any(c.isspace() for c in token):
        raise ValueError(f"{where} must hold a token of at least {MIN_LENGTH} printable ASCII "
                         "characters without spaces (e.g. from `openssl rand -hex 32`)")
    return token


class AdminAuth:
    """Checks ``Authorization: Bearer <token>`` against the configured token."""

    def __init__(self, token):
        self.enabled = token is not None
        if self.enabled:
            check_token(token)
            self._digest = hashlib.sha256(token.encode()).digest()

    def check(self, headers):
        """Return None, or raise ServeError: 403 when admin is off or the token is wrong,
        401 when the request carries no bearer token."""
        if not self.enabled:
            raise ServeError(403, "admin_disabled", "admin endpoints are off: start the "
                             f"server with --admin-token-file FILE or ${ENV_VAR} set")
        value = headers.get("authorization", "")
        scheme, _, given = value.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="hmmfast"'}
        if scheme.lower() != "bearer" or not given.strip():
            raise ServeError(401, "unauthorized", "this admin endpoint needs the header "
                             "'Authorization: Bearer <token>'", headers=challenge)
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
        if not hmac.compare_digest(digest, self._digest):
            raise ServeError(403, "forbidden", "the admin token is wrong")
