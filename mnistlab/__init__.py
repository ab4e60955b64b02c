"""mnistlab: softmax regression on MNIST in NumPy, and the training framework that grows from it.

    from mnistlab import Solver, plot_loss_and_acc
    runner = Solver({'max_epoch': 10, 'batch_size': 100, 'learning_rate': 0.01,
                     'momentum': 0.9, 'display_freq': 50, 'seed': 0})
    loss_list, acc_list = runner.train()
    test_loss, test_acc = runner.test()

The modules, one responsibility each:

    data:      idx (the IDX file format), data_home (where the data is), download (into the cache),
               dataloader (splits, batches)
    models:    module (what layers and models share), layers (forward/backward pairs),
               fast (their optimised twins), loss (softmax cross-entropy, margin heads,
               the assignment's model), model (Sequential and the model registry)
    training:  optimizer (update rules), schedule (learning rates), solver (the loop),
               history, early_stopping, checkpoint, config (every cfg key)
    around it: sweeps (grids of runs), threads (BLAS threads that fit the cores),
               visualize (figures), gradcheck (numerical gradients),
               cli (the command line), checks and fileio (shared helpers)
"""
from .checkpoint import CheckpointError
from .config import ConfigError
from .data_home import DataNotFoundError, find_data_root
from .dataloader import Dataloader, Dataset, IterationBatchSampler, build_dataloader
from .gradcheck import GradientCheckError, gradcheck
from .idx import IDXError, read_idx
from .layers import (BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Layer, Linear,
                     MaxPool2d, ReLU)
from .loss import SoftmaxCrossEntropyLoss
from .model import MODELS, Sequential, build_model
from .optimizer import ASGD, OPTIMIZERS, SGD, Adagrad, Adam, Adamax, AdamW, RMSProp, Rprop
from .schedule import SCHEDULES, ConstantLR, CosineLR, StepLR
from .solver import Solver, TrainingDivergedError
from .sweeps import sweep
from .fileio import OutputError
from .visualize import (plot_confusion_matrix, plot_heatmap, plot_histories, plot_loss_and_acc,
                        plot_misclassified, plot_sweep, plot_weight_templates)

__version__ = "0.2.0"

__all__ = [
    "Solver", "TrainingDivergedError",
    "Dataset", "IterationBatchSampler", "Dataloader", "build_dataloader", "find_data_root",
    "read_idx",
    "SoftmaxCrossEntropyLoss", "Sequential", "build_model", "MODELS",
    "Layer", "Linear", "ReLU", "BatchNorm1d", "BatchNorm2d", "Dropout", "Conv2d", "MaxPool2d",
    "Flatten",
    "SGD", "Adam", "AdamW", "Adagrad", "RMSProp", "Adamax", "ASGD", "Rprop", "OPTIMIZERS",
    "ConstantLR", "StepLR", "CosineLR", "SCHEDULES",
    "sweep", "gradcheck",
    "plot_loss_and_acc", "plot_histories", "plot_sweep", "plot_heatmap", "plot_confusion_matrix",
    "plot_weight_templates", "plot_misclassified",
    "ConfigError", "DataNotFoundError", "IDXError", "CheckpointError", "OutputError",
    "GradientCheckError",
]
