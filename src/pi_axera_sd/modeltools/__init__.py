"""Model tools: export to the AXERA layout, tiny test models, hub pull, verify. Need the [export] extra."""
