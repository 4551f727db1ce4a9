"""Experiment runners behind notebooks 3 and 4 and the benchmarks: recipe quality, cropping, published rows."""
