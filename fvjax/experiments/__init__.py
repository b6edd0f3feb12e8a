"""The experiments of the seed documents as command-line programs (``fvjax <name>`` or
``python -m experiments.<name>`` from the repository root): vrest, synthetic, understand, explore,
drift. Each is a thin script over the library."""
