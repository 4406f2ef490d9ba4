"""Password policy and argon2id hashing."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from config import Settings

MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase; longer input is refused, never truncated.
MAX_PASSWORD_LENGTH = 1024


def password_problems(password: str) -> list[str]:
    """What makes ``password`` unacceptable, in words a person can act on."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Password must have at most {MAX_PASSWORD_LENGTH} characters.")
    if password.strip() == "":
        problems.append("Password must not be blank.")
    return problems


class Passwords:
    """Hashes and checks passwords with the configured argon2id cost."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Checked against when the username is unknown, so that answer takes as long
        # as a wrong password for a real account.
        self._decoy_hash = self._hasher.hash("decoy password for unknown usernames")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash still costs one verification."""
        try:
            return self._hasher.verify(password_hash or self._decoy_hash, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
