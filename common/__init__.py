"""Shared library for lightweight STFT-domain speech enhancement.

Kept free of heavy imports on purpose: a notebook ships only the modules it imports (this package file
included), and `python -m common` must start fast.
"""

import warnings

# tqdm.auto draws widget bars where ipywidgets exists (Kaggle) and falls back to text bars
# elsewhere, with a warning that would sit as a red box in every rendered notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
