"""Evaluators sentence-transformers lacks: routing texts to the nearest label name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

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
    ) -> None:
        super().__init__()
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

    def score_matrix(self, model: SentenceTransformer, embed: Any = None) -> Any:
        """Cosine similarity of every text to every label name, as a (texts x labels) numpy array."""
        embed = embed or (lambda texts, prompt, side: self.embed_inputs(model, texts, prompt, side))
        class_texts = [label_text(label, self.label_names) for label in self.classes]
        queries = embed(self.texts, self.query_prompt, "query")
        scores = queries @ embed(class_texts, self.corpus_prompt, "document").T
        return scores.detach().cpu().float().numpy()

    def get_config_dict(self) -> dict[str, Any]:
        return {"labels": len(self.classes), "texts": len(self.texts)}


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
