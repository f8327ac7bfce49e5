"""Secrets live in the keyring; without one they last for the session and the user is told."""

from __future__ import annotations

from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail
from keyring.errors import KeyringLocked

from copilot.services.secrets import INGEST_TOKEN, LLM_API_KEY, SERVICE, SecretStore


def test_memory_keyring_round_trip(memory_keyring: Any) -> None:
    store = SecretStore()
    assert store.available()[0] is True
    assert store.get(LLM_API_KEY) is None
    assert store.set(LLM_API_KEY, "sk-test-123") is True
    assert memory_keyring.passwords == {(SERVICE, LLM_API_KEY): "sk-test-123"}
    # A new store (the next start of the app) finds it in the keyring.
    assert SecretStore().get(LLM_API_KEY) == "sk-test-123"
    store.delete(LLM_API_KEY)
    assert store.get(LLM_API_KEY) is None
    assert memory_keyring.passwords == {}
    store.delete(LLM_API_KEY)  # deleting a missing secret is fine


def test_empty_value_deletes(memory_keyring: Any) -> None:
    store = SecretStore()
    store.set(INGEST_TOKEN, "tok")
    store.set(INGEST_TOKEN, "")
    assert store.get(INGEST_TOKEN) is None
    assert memory_keyring.passwords == {}


def test_fail_backend_keeps_the_secret_for_the_session_only() -> None:
    keyring.set_keyring(fail.Keyring())  # (also the default of every test)
    store = SecretStore()
    available, message = store.available()
    assert available is False
    assert message.startswith("No system keyring is available (")
    assert message.endswith("the key is used for this session only and not saved.")
    assert store.set(LLM_API_KEY, "sk-session") is False
    assert store.get(LLM_API_KEY) == "sk-session"
    assert SecretStore().get(LLM_API_KEY) is None  # not saved anywhere


class _EmptyChainer(chainer.ChainerBackend):
    backends: tuple[Any, ...] = ()  # what keyring finds on a desktop without any keyring service


def test_chainer_without_backends_is_unavailable() -> None:
    available, message = SecretStore(backend=_EmptyChainer()).available()
    assert available is False
    assert "No system keyring is available" in message


class _LockedKeyring(KeyringBackend):
    """A real backend that fails: a locked login keyring, a D-Bus error."""

    priority = 5

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the login keyring is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the login keyring is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the login keyring is locked")


def test_backend_errors_fall_back_to_the_session_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SecretStore(backend=_LockedKeyring())
    assert store.available()[0] is True
    assert store.get(LLM_API_KEY) is None  # a read error is not a crash
    assert store.set(LLM_API_KEY, "sk-x") is False
    assert store.get(LLM_API_KEY) == "sk-x"
    available, message = store.available()
    assert available is False
    assert "locked" in message and "this session only" in message
    assert "sk-x" not in caplog.text  # the secret itself is never logged
