"""Graph-to-graph passes: autodiff, common subexpressions, fusion; one ordered pipeline."""
