"""The paper's architecture search (section III) and training of the derived network."""
