"""Scripts that measure and print figures (never timed tests). A regular package, so that `import benchmarks` finds
it rather than the v7.0 benchmarks.py script beside it (a folder without __init__.py loses to a module)."""
