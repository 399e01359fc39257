"""Evaluators sentence-transformers lacks: routing texts to the nearest label name.

A bi-encoder (or sparse encoder) embeds texts and label names; a reranker (CrossEncoder) scores every
(text, label name) pair, or, with a `retriever`, only the retriever's top-k label names per text:
retrieve-then-rerank, measured as routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import OmegaConf
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from stembed.components.kinds import kind_of
from stembed.components.model import load_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def label_text(label: str, label_names: dict[str, str] | None = None) -> str:
    """The text a label is embedded as: label_names[label], else 'cancel_order' -> 'cancel order'."""
    return (label_names or {}).get(label) or label.replace("_", " ")


class LabelRetrievalEvaluator(SentenceEvaluator):
    """Embed each text and every label's name; the nearest label name is the prediction.

    Metrics: accuracy@1, mrr@10 (rank of the true label), macro_f1 (over labels, of the top-1 prediction).
    This is how ticket routing and intent detection use an embedding model without a classifier head.
    """

    def __init__(
        self,
        texts: list[str],
        labels: list[str],
        label_names: dict[str, str] | None = None,
        name: str = "",
        batch_size: int = 64,
        primary_metric: str = "accuracy@1",
        query_prompt: str | None = None,
        corpus_prompt: str | None = None,
        retriever: str | None = None,
        top_k: int | None = None,
    ) -> None:
        """retriever/top_k (rerankers only): a bi-encoder (directory or hub id) whose top_k label names
        per text the reranker orders; without one the reranker scores every label name."""
        super().__init__()
        self.retriever, self.top_k = retriever, top_k
        self._order: np.ndarray | None = None
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt  # model.prompts (texts, labels)
        self.texts, self.labels = list(texts), [str(label) for label in labels]
        self.label_names = dict(label_names or {})
        self.classes = sorted(set(self.labels) | set(self.label_names))
        self.name, self.batch_size, self.primary_metric = name, batch_size, primary_metric

    def __call__(
        self, model: SentenceTransformer, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:

        scores = torch.as_tensor(self.score_matrix(model))
        truth = torch.tensor([self.classes.index(label) for label in self.labels], device=scores.device)
        true_scores = scores.gather(1, truth[:, None])
        ranks = (scores > true_scores).sum(dim=1) + 1
        predicted = scores.argmax(dim=1)
        metrics = {
            "accuracy@1": (ranks == 1).float().mean().item(),
            "mrr@10": torch.where(ranks <= 10, 1.0 / ranks, torch.zeros_like(ranks, dtype=torch.float))
            .mean()
            .item(),
            "macro_f1": _macro_f1(truth.tolist(), predicted.tolist(), len(self.classes)),
        }
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def embed_inputs(
        self, model: SentenceTransformer, texts: list[str], prompt: str | None = None, side: str = "query"
    ) -> Any:
        """Normalized embeddings (one method, so stembed.components.per_example can reuse them). Texts are
        queries and label names documents, as in retrieval (`encode_query` / `encode_document`)."""
        encode = model.encode_query if side == "query" else model.encode_document
        return encode(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=True,
        )

    def score_pairs(self, model: Any, pairs: list[tuple[str, str]]) -> Any:
        """A reranker's scores of (text, label name) pairs (one method, so per-example tables reuse them)."""
        return model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)

    def score_matrix(self, model: SentenceTransformer, embed: Any = None, score: Any = None) -> Any:
        """Every text's score for every label name, as a (texts x labels) numpy array: cosine similarity,
        or a reranker's score (-inf for label names outside the retriever's top_k)."""
        class_texts = [label_text(label, self.label_names) for label in self.classes]
        if kind_of(model).scores_pairs:
            return self._reranked(model, class_texts, score or (lambda pairs: self.score_pairs(model, pairs)))
        embed = embed or (lambda texts, prompt, side: self.embed_inputs(model, texts, prompt, side))
        queries = embed(self.texts, self.query_prompt, "query")
        scores = queries @ embed(class_texts, self.corpus_prompt, "document").T
        return scores.detach().cpu().float().numpy()

    def _reranked(self, model: Any, class_texts: list[str], score: Any) -> Any:
        """The reranker's scores of each text's candidates; the other label names below them, in the
        retriever's order (as a pipeline that reranks the top k and keeps the rest would rank them)."""
        order = self.retriever_order(class_texts)
        candidates = order[:, : self.top_k] if self.retriever and self.top_k else order
        rows = zip(self.texts, candidates, strict=True)
        pairs = [(text, class_texts[j]) for text, row in rows for j in row]
        scores = np.asarray(score(pairs), dtype=np.float32).reshape(candidates.shape)
        position = np.empty_like(order)
        np.put_along_axis(position, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), axis=1)
        matrix = (scores.min() - 1 - position).astype(np.float32)
        np.put_along_axis(matrix, candidates, scores, axis=1)
        return matrix

    def retriever_order(self, class_texts: list[str]) -> np.ndarray:
        """(texts x labels) label indices by the retriever's cosine, best first (label order without
        a retriever or top_k); computed once, as the retriever does not train."""
        if self._order is None:
            order = np.tile(np.arange(len(class_texts)), (len(self.texts), 1))
            if self.retriever and self.top_k and self.top_k < len(class_texts):
                retriever = load_model(OmegaConf.create({"name_or_path": self.retriever})).model
                order = np.argsort(-self.score_matrix(retriever), axis=1, kind="stable")
            self._order = order
        return self._order

    def get_config_dict(self) -> dict[str, Any]:
        config = {"labels": len(self.classes), "texts": len(self.texts)}
        return config | ({"retriever": self.retriever, "top_k": self.top_k} if self.retriever else {})


def _macro_f1(truth: list[int], predicted: list[int], n_classes: int) -> float:
    """Mean F1 over the classes that occur in truth or predictions."""
    scores = []
    for cls in range(n_classes):
        tp = sum(t == cls and p == cls for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != cls and p == cls for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == cls and p != cls for t, p in zip(truth, predicted, strict=True))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0
