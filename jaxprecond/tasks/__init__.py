"""The tasks: spectra and the single-index teacher, the correlation-shift data, the IDX loader
and the student models. They know nothing of optimizers or experiments."""
