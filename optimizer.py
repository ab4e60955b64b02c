"""The assignment's optimizer.py, re-exported from the mnistlab package (with the other rules)."""
from mnistlab.optimizer import SGD, Adagrad, Adam, Adamax, AdamW, RMSProp

__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSProp", "Adamax"]
