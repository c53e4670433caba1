"""gc-tuner's benchmarks: tuning quality on real Go workloads (bench.quality) and the operator's cost
at fleet scale (bench.fleet). Each prints tables and writes a Markdown report and PNGs to
bench/results/; `--smoke` runs a seconds-long version that CI uses to check the harness works.
"""
