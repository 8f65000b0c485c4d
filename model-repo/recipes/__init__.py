"""The scripts that convert, train and evaluate our models, as the package `recipes` (model-repo/recipes, mapped in
pyproject.toml): each runs as `python -m recipes.<name>`, e.g. `.venv/bin/python -m recipes.evaluate --help`."""
