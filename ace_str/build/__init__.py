"""The construction layer: the only code that turns a config or a checkpoint into objects
(charset, datasets and their mixing, loaders, models, the character counter). Training
(``ace_str.engine``), evaluation (``ace_str.evaluation``) and scripts all build through it, so a
config means the same thing everywhere; it imports data, models, losses and scoring, never
engine or evaluation (the import contract in pyproject.toml keeps it so)."""
