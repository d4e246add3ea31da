"""Console scripts: c2-eval, c2-judge, c2-report."""
