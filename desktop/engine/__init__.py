"""The strategy engine: registry, session engines, segment agents, strategies, risk, logs."""
