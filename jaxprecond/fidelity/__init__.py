"""Fidelity to the authors' PyTorch code: replays of their runs (``shared/reference``)."""
