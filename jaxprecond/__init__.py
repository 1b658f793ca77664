"""jaxprecond: how preconditioning steers feature learning, simulated at scale in JAX.

The first-layer gradient of a network is preconditioned neuron-wise by ``P = Σ^p`` (Yoshida &
Nitanda, "How Does Preconditioning Guide Feature Learning in Deep Neural Networks?",
arXiv 2509.25637). This package provides that preconditioner as optax transformations, the
paper's teacher–student tasks, and experiments vmapped over seeds and swept settings.
"""

from jaxprecond.linalg import Eigh, eigh_psd, matrix_power, power_from_eigh
from jaxprecond.optim.adahessian import adahessian, hutchinson_diagonal, scale_by_adahessian
from jaxprecond.optim.covariance_power import (
    covariance_power,
    preconditioner,
    route_to_kernel,
    scale_by_covariance_power,
)
from jaxprecond.optim.estimated import empirical_covariance, scale_by_online_covariance_power
from jaxprecond.optim.kfac import kfac, mlp_kfac_statistics, scale_by_kfac
from jaxprecond.optim.registry import make_optimizer
from jaxprecond.optim.shampoo import scale_by_shampoo, shampoo
from jaxprecond.tasks.single_index import (
    Spectrum,
    Task,
    case_spectrum,
    random_rotation,
    sample_task,
    teacher,
)
from jaxprecond.tasks.student import init_mlp, init_mlp_gaussian, mlp_apply, regression_loss
from jaxprecond.training.regression import Trajectory, train

__version__ = "0.1.0"

__all__ = [
    "adahessian",
    "empirical_covariance",
    "hutchinson_diagonal",
    "kfac",
    "mlp_kfac_statistics",
    "scale_by_kfac",
    "make_optimizer",
    "scale_by_adahessian",
    "scale_by_online_covariance_power",
    "scale_by_shampoo",
    "shampoo",
    "Eigh",
    "Spectrum",
    "Task",
    "Trajectory",
    "case_spectrum",
    "covariance_power",
    "eigh_psd",
    "init_mlp",
    "init_mlp_gaussian",
    "matrix_power",
    "mlp_apply",
    "power_from_eigh",
    "preconditioner",
    "random_rotation",
    "regression_loss",
    "route_to_kernel",
    "sample_task",
    "scale_by_covariance_power",
    "teacher",
    "train",
]
