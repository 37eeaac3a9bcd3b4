"""Labels: weak labels from the codebook, human annotations (round-trip), gold splits."""
