"""Secrets (the LLM API key, the ingestion token) live in the system keyring, and only there.

When no usable keyring exists (a headless Linux session without a Secret Service, a locked or
broken backend), a secret given during the session is kept in memory for that session only and
the user is told so, in plain words; nothing is ever written to the settings file or to disk.

``keyring`` is imported on first use, not at start-up: choosing a backend probes D-Bus and takes
a third of a second, which the first paint of the window must not wait for.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_log = logging.getLogger(__name__)

SERVICE = "agent-copilot"
LLM_API_KEY = "llm_api_key"
INGEST_TOKEN = "ingest_token"
KNOWN_SECRETS: tuple[str, ...] = (LLM_API_KEY, INGEST_TOKEN)

_SESSION_ONLY = "the key is used for this session only and not saved"


def unavailable_message(reason: str) -> str:
    """The sentence shown to the user when secrets cannot be saved."""
    return f"No system keyring is available ({reason}); {_SESSION_ONLY}."


class SecretStore:
    """Get, set and delete named secrets in the system keyring, with a session-only fallback.

    Thread-safe: a lock guards the in-memory fallback, and keyring backends are called one at a
    time.

    Args:
        service: the keyring service name the secrets are filed under.
        backend: a ``keyring.backend.KeyringBackend`` to use instead of ``keyring.get_keyring()``
            (tests); by default the backend keyring chose is looked up on each call, so
            ``keyring.set_keyring`` takes effect immediately.
    """

    def __init__(self, service: str = SERVICE, *, backend: Any = None) -> None:
        self._service = service
        self._backend = backend
        self._memory: dict[str, str] = {}
        self._failure: str | None = None  # why the last keyring call failed, if it did
        self._lock = threading.RLock()

    @property
    def service(self) -> str:
        return self._service

    def available(self) -> tuple[bool, str]:
        """Whether secrets can be saved, and a message for the user.

        Returns:
            ``(True, "Saved in the system keyring (<backend>).")`` or ``(False, "No system keyring
            is available (<reason>); the key is used for this session only and not saved.")``.
        """
        with self._lock:
            backend, reason = self._usable_backend()
            if backend is None:
                return False, unavailable_message(reason)
            if self._failure is not None:
                return False, unavailable_message(self._failure)
            return True, f"Saved in the system keyring ({_backend_name(backend)})."

    def get(self, name: str) -> str | None:
        """The secret called ``name``, or None when it is not set anywhere."""
        with self._lock:
            if name in self._memory:
                return self._memory[name]
            backend, _ = self._usable_backend()
            if backend is None:
                return None
            try:
                value = backend.get_password(self._service, name)
            except Exception as exc:
                self._failed("read", name, exc)
                return None
            return str(value) if value is not None else None

    def set(self, name: str, value: str) -> bool:
        """Store a secret; an empty value deletes it.

        Returns:
            True when it was saved in the keyring, False when it is kept for this session only
            (`available` then says why).
        """
        if not value:
            self.delete(name)
            return True
        with self._lock:
            backend, reason = self._usable_backend()
            if backend is None:
                self._memory[name] = value
                _log.warning("secret %s kept for this session only: %s", name, reason)
                return False
            try:
                backend.set_password(self._service, name, value)
            except Exception as exc:
                self._failed("save", name, exc)
                self._memory[name] = value
                return False
            self._memory.pop(name, None)
            self._failure = None
            return True

    def delete(self, name: str) -> None:
        """Forget a secret, in memory and in the keyring; deleting a missing one is fine."""
        with self._lock:
            self._memory.pop(name, None)
            backend, _ = self._usable_backend()
            if backend is None:
                return
            from keyring.errors import PasswordDeleteError

            try:
                backend.delete_password(self._service, name)
            except PasswordDeleteError:
                pass  # it was not there
            except Exception as exc:
                self._failed("delete", name, exc)

    def _failed(self, action: str, name: str, exc: Exception) -> None:
        self._failure = f"the keyring could not {action} it: {exc}".rstrip(": ")
        _log.warning("keyring %s of %s failed: %s", action, name, exc)

    def _usable_backend(self) -> tuple[Any, str]:
        """(backend, "") or (None, why there is none)."""
        try:
            import keyring
            from keyring.backends import chainer, fail
        except Exception as exc:  # pragma: no cover - keyring is a dependency
            return None, f"the keyring module cannot be loaded: {exc}"
        try:
            backend = self._backend if self._backend is not None else keyring.get_keyring()
        except Exception as exc:
            return None, f"choosing a keyring backend failed: {exc}"
        if isinstance(backend, fail.Keyring):
            return None, "no keyring backend is installed or running"
        if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
            return None, "no keyring backend is installed or running"
        try:
            from keyring.backends import null

            if isinstance(backend, null.Keyring):
                return None, "keyring is disabled (null backend)"
        except ImportError:  # pragma: no cover - present in every supported keyring
            pass
        return backend, ""


def _backend_name(backend: Any) -> str:
    name = getattr(type(backend), "name", None)
    if isinstance(name, str) and name:
        return name
    return f"{type(backend).__module__}.{type(backend).__qualname__}"
