"""Stage 1, genotype → network: the search space, the one op table, the genotype schema, the
derived LGCNet, checkpoints, and the shipped genotypes (`genotypes/`) and weights (`weights/`)."""
