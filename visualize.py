"""The assignment's visualize.py, re-exported from the mnistlab package (with the other figures)."""
from mnistlab.visualize import (plot_confusion_matrix, plot_heatmap, plot_loss_and_acc,
                                plot_misclassified, plot_sweep, plot_weight_templates)

__all__ = ["plot_loss_and_acc", "plot_sweep", "plot_heatmap", "plot_confusion_matrix",
           "plot_weight_templates", "plot_misclassified"]
