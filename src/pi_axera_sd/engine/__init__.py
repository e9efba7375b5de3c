"""The generation engine: model layout, tokenizer, LCM sampler, image I/O, pipeline."""
