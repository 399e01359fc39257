"""Quality on real data: each preset on a CPU-sized budget, baseline -> trained metric on held-out data.

Reads the real data sets in place from ../shared/data (see each folder's SOURCE.txt); runs the real
`stembed train` command with all-MiniLM-L6-v2 and reads the metrics back from MLflow.

Usage: .venv/bin/python scripts/bench_quality.py [--data ../shared/data] [--only stsb,it_tickets] [--scale 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchlib import print_table, stembed_train


@dataclass
class Row:
    preset: str
    overrides: list[str]
    steps: int
    metric: str  # the evaluator metric compared before/after (MLflow name, without baseline_/final_)
    # A faithful preset of a flawed reference recipe is expected to get worse; the bench shows it.
    known_flaw: str = ""


def rows(data: Path) -> list[Row]:
    stsb = data / "stsb-multi-mt-en" / "stsb-en-{split}.csv"
    bitext = data / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
    return [
        Row(
            "stsb",
            [
                f"data.source='{stsb}'",  # quoted: '{split}' is not a Hydra dict
                "data.eval_split=dev",
                "data.read_options={header:null,names:[sentence1,sentence2,score]}",
                "data.label_scale=5",
            ],
            300,
            "sts-test_spearman_cosine",
        ),
        Row(
            "customer_support",
            [f"data.source={bitext}"],
            200,
            "bitext-intents_accuracy_at_1",
            known_flaw="all labels 1.0: CosineSimilarityLoss collapses the embeddings",
        ),
        Row("customer_support_mnrl", [f"data.source={bitext}"], 200, "bitext-intents_accuracy_at_1"),
        Row(
            "it_tickets",
            [f"data.source={data / 'it-service-tickets' / 'all_tickets_processed_improved_v3.csv'}"],
            100,
            "it-tickets_macro_f1",
        ),
        Row(
            "banking77",
            [f"data.source={data / 'banking77' / 'train.csv'}"],
            200,
            "banking77-intents_accuracy_at_1",
        ),
    ]


def run(row: Row, workdir: Path, scale: float) -> dict[str, str]:
    steps = max(1, round(row.steps * scale))
    overrides = [f"+experiment={row.preset}", *row.overrides, f"trainer.max_steps={steps}"]
    wall, run_data = stembed_train([*overrides, "tracking.log_model=false"], workdir)
    metrics, params = run_data.metrics, run_data.params
    before, after = metrics[f"baseline_{row.metric}"], metrics[f"final_{row.metric}"]
    batch = int(params["trainer.per_device_train_batch_size"])
    return {
        "preset": row.preset,
        "budget": f"{steps} steps x {batch} = {steps * batch} pairs",
        "train/eval rows": f"{params['data_stats.train_pairs']} / {params['data_stats.eval_pairs']}",
        "metric (held out)": row.metric,
        "baseline": f"{before:.4f}",
        "trained": f"{after:.4f}",
        "change": f"{after - before:+.4f}",
        "pairs/s": f"{metrics['train_samples_per_second']:.1f}",
        "wall s": f"{wall:.0f}",
        "improved": "yes" if after > before else ("NO (known flaw)" if row.known_flaw else "NO"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    parser.add_argument("--only", default="", help="comma-separated presets")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    options = parser.parse_args()
    selected = [
        r for r in rows(options.data.resolve()) if not options.only or r.preset in options.only.split(",")
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in selected:
            results.append(run(row, Path(tmp), options.scale))
            print(" | ".join(results[-1].values()), flush=True)
    print_table(results)
    for row in selected:
        if row.known_flaw:
            print(f"\n{row.preset}: faithful to a flawed reference ({row.known_flaw}).")
    if any(r["improved"] == "NO" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
