"""Review: the takes of each pair, and the decisions people make on them (approve, reject), kept as plain files
in storage next to the clips, never in Dagster alone."""
