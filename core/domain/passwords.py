"""Password hashing with argon2id: hash, verify, and tell when a stored hash is outdated.

CPU-bound and without IO; the only randomness is the salt, which argon2-cffi draws from the
operating system. The parameters are measured in `bench/argon2_params.py` and recorded in
`docs/decisions/0002-password-hashing.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, kw_only=True)
class Argon2Params:
    time_cost: int
    memory_cost_kib: int
    parallelism: int
    hash_len: int = 32
    salt_len: int = 16


# Chosen from bench/argon2_params.py on the 2-core development machine (see decision 0002).
DEFAULT_PARAMS = Argon2Params(time_cost=2, memory_cost_kib=32 * 1024, parallelism=1)


class Passwords:
    """Hash and verify passwords with one set of argon2id parameters."""

    def __init__(self, params: Argon2Params = DEFAULT_PARAMS) -> None:
        self.params = params
        self._hasher = PasswordHasher(time_cost=params.time_cost,
                                      memory_cost=params.memory_cost_kib,
                                      parallelism=params.parallelism, hash_len=params.hash_len,
                                      salt_len=params.salt_len, type=Type.ID)

    def hash(self, password: str) -> str:
        """Return the PHC string of a password (a fresh salt each time)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Return whether the password matches; False also for a hash that cannot be read."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Return whether a matching hash was made with other parameters and should be redone.

        The caller rehashes after a successful login and sends `user.change-password`.
        """
        return self._hasher.check_needs_rehash(password_hash)
