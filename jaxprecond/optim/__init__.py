"""The optimizer layer: preconditioners as optax transformations, one family a module, on
:mod:`jaxprecond.linalg`, and the registry that names them and supplies their oracles."""
