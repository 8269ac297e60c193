"""Analysis: pure functions from cell scores to curves, emergence scores and verdicts."""
