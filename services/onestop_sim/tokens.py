"""Session tokens: HS256 JWTs like the document's sample, and a way to revoke all of them at once.

The signing secret is made at seed time and kept in the state file, so tokens survive a restart as they
would on the real server. Every token carries the current "generation"; `POST /_sim/expire-tokens` moves
the generation on, which refuses every token issued before (a server-side logout of everyone).
"""

from __future__ import annotations

import math
import threading
import time
import uuid

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.onestop_sim.errors import BAD_TOKEN, VendorError
from services.onestop_sim.state import Store

ISSUER = "onestop-sim"


class Tokens:
    def __init__(self, store: Store):
        self.store = store
        self.secret = store.get_meta("jwt_secret")
        self.generation = int(store.get_meta("token_generation", 0))
        self._lock = threading.Lock()

    def issue(self, username: str, lifetime: float) -> str:
        now = time.time()
        claims = {
            "iss": ISSUER,
            "sub": username,
            "iat": int(now),
            # Rounded up, so a token lives at least `lifetime` seconds (JWT times are whole seconds).
            "exp": math.ceil(now + lifetime),
            "jti": uuid.uuid4().hex,
            "gen": self.generation,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def valid(self, token: str) -> bool:
        """True for a well-formed, correctly signed, unexpired token of the current generation."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.PyJWTError:
            return False
        return claims.get("gen") == self.generation

    def expire_all(self) -> int:
        with self._lock:
            self.generation += 1
            self.store.set_meta("token_generation", self.generation)
            return self.generation


bearer = HTTPBearer(auto_error=False, description="The token from dangnhap: `Authorization: Bearer {token}`.")


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """Route dependency: a missing, malformed, expired, wrongly signed or revoked token answers 401."""
    if credentials is None or not request.app.state.sim.tokens.valid(credentials.credentials):
        raise VendorError(401, BAD_TOKEN, shape="error")
