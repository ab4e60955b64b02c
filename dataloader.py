"""The assignment's dataloader.py, re-exported from the mnistlab package."""
from mnistlab.dataloader import Dataloader, Dataset, IterationBatchSampler, build_dataloader

__all__ = ["Dataset", "IterationBatchSampler", "Dataloader", "build_dataloader"]
