"""Collaborators of the pure core, implemented by `copilot.services`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from copilot.core.feedback import FeedbackAction
    from copilot.core.models import ArticleHit


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model and backend; stored in index manifests."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return an array of shape (len(texts), dimension), each row of unit length."""
        ...


class Retriever(Protocol):
    """Finds knowledge articles for a query."""

    def search(self, query: str, *, k: int = 5, product: str | None = None) -> list[ArticleHit]: ...


class FeedbackSink(Protocol):
    """Stores what the agent did with the co-pilot's output (the feedback store implements it).

    `record` is called from one worker thread (the app's "db" lane), never the GUI thread; an
    implementation may block (SQLite) but must not lose an action it returned from.
    """

    def record(self, action: FeedbackAction) -> None:
        """Keep one action (accept, edit, discard, article helpful, flag wrong, ...)."""
        ...


# --- duck-typed views of core objects, so each engine stage can be tested with plain objects ---


class TurnLike(Protocol):
    """What the stages read from a turn (`copilot.core.conversation.Turn` fits)."""

    @property
    def turn_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


class EvidenceLike(Protocol):
    """The words behind a flag: which turn, and the quote."""

    @property
    def turn_id(self) -> str: ...

    @property
    def quote(self) -> str: ...


class FlagLike(Protocol):
    """A signal flag (`copilot.core.signals.Flag` fits): kind, level and the words behind it."""

    @property
    def kind(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def evidence(self) -> Sequence[EvidenceLike]: ...
