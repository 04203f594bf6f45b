"""Build tooling that runs in the repository: notebook builder, Kaggle metadata, smoke runner."""
