"""Where the DAIDALUS encounter corpus is (``../shared/data/separation`` beside the checkout)."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "separation"
if not CORPUS.is_dir():  # a worktree beside the shared folder, or the main checkout
    CORPUS = Path("/work/shared/data/separation")
SCENARIOS = sorted((CORPUS / "scenarios").glob("*.daa"))
