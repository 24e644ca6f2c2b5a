"""Projections: deterministic folds of the log into DuckDB (state, history,
audit) and LanceDB (recall), checkpointed so replaying is always safe."""
