"""Semantic memory: what each user told Heartline, embedded and searchable, in ChromaDB.

Each user has a collection of their own, so one user's memories can never surface in another's
reply whatever the query: isolation is the store's, not the prompt's. Recent turns still come
from SQL; this adds the older things that matter to what the user is saying now.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

from core.turn import Memory
from storage.turns import SqlHistory

log = logging.getLogger(__name__)

# What is worth remembering: a statement with some substance, not "ok" or "thanks".
MIN_WORDS = 4
MAX_CHARS = 500
RECALLED = 3  # older statements most like the message, beside the recent turns


def open_chroma(path: str | None = None, url: str | None = None):
    """A persistent client under the data dir, or a Chroma server's HTTP client."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(host=parsed.hostname, port=parsed.port or 8000,
                                   ssl=parsed.scheme == "https", settings=settings)
    return chromadb.PersistentClient(path=path, settings=settings)


def embedding_function(encode: Callable[[list[str]], object], model_name: str):
    """Our own sentence encoder as Chroma's embedding function: Chroma's default one would
    download a model on first use."""
    from chromadb import EmbeddingFunction

    class Encoder(EmbeddingFunction):
        def __init__(self) -> None:
            pass

        def __call__(self, input):  # noqa: A002  (Chroma's parameter name)
            return [row for row in encode(list(input))]

        @staticmethod
        def name() -> str:
            return f"heartline-{model_name}"

        def get_config(self) -> dict:
            return {}

        @staticmethod
        def build_from_config(config: dict):
            raise NotImplementedError("Heartline passes its encoder to every collection it opens")

    return Encoder()


class ChromaMemory:
    def __init__(self, client, encoder, history: SqlHistory, top_k: int = RECALLED) -> None:
        self.client = client
        self.embed = encoder
        self.history = history
        self.top_k = top_k
        self.name = "chroma+recent-turns"

    def _collection(self, user_key: str, create: bool = True):
        name = "user-" + hashlib.sha256(user_key.encode()).hexdigest()[:40]
        if create:
            return self.client.get_or_create_collection(
                name, embedding_function=self.embed, metadata={"hnsw:space": "cosine"})
        return self.client.get_collection(name, embedding_function=self.embed)

    def recall(self, user_key: str, text: str) -> list[Memory]:
        recent = self.history.recall(user_key, text)
        collection = self._collection(user_key)
        count = collection.count()
        if not count or not text:
            return recent
        found = collection.query(query_texts=[text], n_results=min(self.top_k, count),
                                 include=["documents", "metadatas"])
        seen = {m.text for m in recent}
        older = [Memory(document, "memory", meta.get("when"))
                 for document, meta in zip(found["documents"][0], found["metadatas"][0])
                 if document not in seen]
        return older + recent

    def remember(self, user_key: str, text: str) -> None:
        if len(text.split()) < MIN_WORDS:
            return
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._collection(user_key).add(ids=[uuid.uuid4().hex], documents=[text[:MAX_CHARS]],
                                       metadatas=[{"when": when}])

    def forget(self, user_key: str) -> None:
        """Raises when the store cannot be reached: a user told "forgotten" must have been."""
        from chromadb.errors import NotFoundError

        try:
            self.client.delete_collection(self._collection(user_key, create=False).name)
        except NotFoundError:
            log.debug("no memories to forget")
