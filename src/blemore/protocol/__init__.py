"""The paper's protocol and the methods beyond it: folds, training, selection, the run folder."""
