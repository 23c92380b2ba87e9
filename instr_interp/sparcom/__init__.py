"""[SPARCOM] instruction-specific neurons and experts: firing statistics, sets, ablation, before/after."""
