"""Study A's published results: the numbers fc_nets.ipynb and seed_spread.py put ours beside.

A PyTorch course study of fully connected nets 784-512-128-10 on MNIST (inputs in [-1, 1],
plain SGD, cross-entropy), one run per number. Test accuracy, and test loss where the study
gave one.
"""
NETS = {'mlp_linear': (0.9225, 0.2717), 'mlp': (0.9714, 0.0930), 'mlp_bn': (0.9818, 0.0583)}

GRID_EPOCHS = (3, 5, 7, 10, 15)
GRID = {  # Net_1, (batch size, learning rate) -> test accuracy after each of GRID_EPOCHS
    (128, 0.01): [0.9011, 0.9123, 0.9146, 0.9174, 0.9222],
    (128, 0.02): [0.9125, 0.9144, 0.9204, 0.9204, 0.9214],
    (128, 0.03): [0.9012, 0.9173, 0.9192, 0.9164, 0.9225],
    (256, 0.01): [0.8871, 0.8990, 0.9069, 0.9137, 0.9164],
}
LOSSES = {'cross_entropy': 0.9818, 'am_softmax': 0.7624, 'real_am_softmax': 0.7593}   # Net_3
RULES = {'sgd': 0.9818, 'adam': 0.9804, 'adagrad': 0.9849, 'adamax': 0.9805,   # Net_3
         'asgd': 0.9821, 'rprop': 0.9300}
