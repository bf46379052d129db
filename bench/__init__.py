"""Benchmarks: each compares streamer with a baseline in the same run."""
