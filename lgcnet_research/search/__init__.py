"""The paper's search (section III): the supernet over the one op table, the GCN-Guided
Module, Gumbel-softmax relaxation, the expected-latency loss, and the search loop
(`python -m lgcnet_research.search`)."""
