"""Hard-negative mining on 50,000 texts: faiss against exact search (the `mining.use_faiss` switch).

stembed's mining stage is sentence-transformers' `mine_hard_negatives`; this times that function on
the 4,514 (question, answer) pairs of the Bitext customer-support data in ../shared/data, the
questions searched against their answers plus IT-service tickets from ../shared/data as extra
corpus (the miner's `corpus` argument), 50,000 texts in all, with all-MiniLM-L6-v2
(max_seq_length 128).
The first call encodes the texts and caches the embeddings (the library's cache_folder); the
searches are then timed on the cached embeddings, so the two numbers compare the search alone:
exact search (chunked torch matrix products) against faiss (IndexFlatIP, the `faiss` extra).

Usage: .venv/bin/python scripts/bench_mining.py [--texts 50000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from benchlib import IT_TICKETS, SHARED_DATA, load_model_dir, print_table

BITEXT = SHARED_DATA / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"


def mine(pairs, model, cache: str, use_faiss: bool, corpus: list[str]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """(seconds, rows mined) of one mine_hard_negatives call with stembed's default mining knobs."""
    from sentence_transformers.util import mine_hard_negatives

    started = time.perf_counter()
    mined = mine_hard_negatives(
        pairs,
        model,
        corpus=corpus,
        num_negatives=1,
        relative_margin=0.05,
        batch_size=64,
        use_faiss=use_faiss,
        cache_folder=cache,
        verbose=False,
    )
    return time.perf_counter() - started, len(mined)


def measure(texts: int = 50_000, repeat: int = 2) -> list[dict[str, str]]:
    import faiss  # noqa: F401  (the bench compares it: pip install 'stembed[faiss]')
    import pandas as pd
    from datasets import Dataset

    rows = pd.read_csv(BITEXT).drop_duplicates("instruction")
    data = Dataset.from_dict({"anchor": rows["instruction"].tolist(), "positive": rows["response"].tolist()})
    answers = list(dict.fromkeys(data["positive"]))
    tickets = pd.read_csv(IT_TICKETS)["Document"].dropna().astype(str).drop_duplicates()
    corpus = tickets.head(texts - len(data) - len(answers)).tolist()  # distractors up to `texts`
    model = load_model_dir("base")
    model.max_seq_length = 128
    total = len(data) + len(answers) + len(corpus)
    with tempfile.TemporaryDirectory() as cache:
        first, mined = mine(data, model, cache, False, corpus)  # encodes and caches the embeddings
        exact = [mine(data, model, cache, False, corpus)[0] for _ in range(repeat)]
        faiss_s = [mine(data, model, cache, True, corpus)[0] for _ in range(repeat)]
    search = {"exact": statistics.median(exact), "faiss": statistics.median(faiss_s)}
    result = [
        {
            "measure": f"mining, {total:,} texts ({len(data):,} questions against {len(answers):,} "
            f"answers + {len(corpus):,} IT tickets)",
            "exact": f"{search['exact']:.1f} s search",
            "faiss": f"{search['faiss']:.1f} s search",
            "ratio": f"faiss {search['exact'] / search['faiss']:.2f}x",
            "note": f"encoding once {first - exact[0]:.0f} s ({total / (first - exact[0]):.0f} texts/s); "
            f"{mined:,} rows mined; median of {repeat}",
        }
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    print_table(measure(options.texts, options.repeat))


if __name__ == "__main__":
    main()
