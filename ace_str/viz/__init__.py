"""Figures shared by training (TensorBoard) and evaluation (PNG reports)."""
