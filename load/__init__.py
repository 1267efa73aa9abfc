"""Load tests, benchmarks and the performance report for imgclf."""
