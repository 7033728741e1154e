"""What every part of the research package shares (layer 0): the settings layer (JSON
`--config`, then flags), the machine's name, the search space's edges, DDP helpers and the
plots of curves, lineages and genotypes."""
