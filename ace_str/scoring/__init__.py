"""Readings scored against labels: the metrics (defined once) and the loop that decodes a
loader's batches and tallies them, shared by validation during training and by evaluation."""
