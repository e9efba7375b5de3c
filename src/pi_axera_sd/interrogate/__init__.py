"""CLIP interrogation: encoders, taxonomy, embedding cache, scoring."""
