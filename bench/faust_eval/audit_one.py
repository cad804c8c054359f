"""Audit a finished crash run by prefix: audit_one.py PREFIX"""
import sys
sys.argv = [sys.argv[0], "x", "0", sys.argv[1]]
import bench_crash  # runs zero runs
bench_crash.audit(sys.argv[3], sys.argv[3] + "-faust")
