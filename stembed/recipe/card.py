"""Fill sentence-transformers' model card data, and add what only stembed knows to the written card."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from stembed import __version__
from stembed.data.loading import PairData

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SECTION_TITLE = "## Reproduce this run (stembed)"


def describe_datasets(model: SentenceTransformer, data: PairData, task_name: str, offline: bool) -> None:
    """Name the data sets and the model so the card does not say 'Unnamed Dataset'."""
    card = model.model_card_data
    entry = {"name": data.name, **({"id": data.hub_id} if data.hub_id else {})}
    card.train_datasets = [dict(entry)]
    card.eval_datasets = [dict(entry)] if data.eval_pairs is not None else []  # the trainer's eval set
    card.local_files_only = offline
    base = card.base_model.split("/")[-1] if card.base_model else type(model).__name__
    card.model_name = f"{base} fine-tuned on {data.name}"
    card.add_tags(["stembed", f"stembed-{task_name}"])


def add_stembed_section(
    card_path: Path,
    *,
    command: str,
    run_id: str,
    experiment: str,
    tracking_uri: str,
    model_source: str,
    data: PairData,
    baseline: Mapping[str, float],
    final: Mapping[str, float],
    notes: Mapping[str, str] | None = None,
) -> None:
    """Insert a section with the command, the MLflow run and the before/after table into the card.

    notes: more table rows (name -> text), e.g. the mining step, the prompts, the data sets of data=multi.
    """
    lines = [
        SECTION_TITLE,
        "",
        # No link: stembed is not published on a package index, and a dead link misleads the card's readers.
        f"This model was trained with stembed {__version__}, a command-line runner for sentence-transformers "
        "fine-tuning. To train it again:",
        "",
        "```bash",
        command,
        "```",
        "",
        "| | |",
        "|:--|:--|",
        f"| MLflow run | `{run_id}` (experiment `{experiment}`, store `{tracking_uri}`) |",
        f"| Base model source | `{model_source}` |",
        f"| Training data | {data.name} — `{data.source}` |",
        f"| Pairs | {data.stats.get('train_pairs')} train, {data.stats.get('eval_pairs')} eval |",
        f"| Data fingerprint | `{data.fingerprint}` |",
        *(f"| {name} | {text} |" for name, text in (notes or {}).items() if text),  # mining, prompts, sets
        "",
    ]
    if final:
        lines += [
            "### Evaluation before and after fine-tuning",
            "",
            "| Metric | Base model | Fine-tuned | Change |",
            "|:--|--:|--:|--:|",
        ]
        for key, after in final.items():
            before = baseline.get(key)
            change = f"{after - before:+.4f}" if before is not None else ""
            shown_before = f"{before:.4f}" if before is not None else ""
            lines.append(f"| {key} | {shown_before} | {after:.4f} | {change} |")
        lines.append("")
    if card_path.is_file():
        text = card_path.read_text(encoding="utf-8")
    else:  # sentence-transformers logs and skips a card it fails to render; keep what stembed knows
        text = f"# {data.name}\n\nsentence-transformers could not render its model card for this run.\n"
    section = "\n".join(lines) + "\n"
    anchor = text.find("\n## Training Details")
    if anchor == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = text[: anchor + 1] + section + text[anchor + 1 :]
    card_path.write_text(text, encoding="utf-8")
