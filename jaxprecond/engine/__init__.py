"""The engine: settings, the experiment definition, the training loop, sweeps, run folders,
statistics and reports. It knows no experiment."""
