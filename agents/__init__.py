"""metarl.agents: one module per meta-learning algorithm."""
