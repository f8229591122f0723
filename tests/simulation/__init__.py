"""Deterministic fault simulation of the controller: a seeded random schedule of pushes, App Runner
events, reconciler runs, faults, crashes and overlapping invocations, driven through the real handlers
with invariants checked after every step and at quiescence (issue 8, "Prove it")."""
