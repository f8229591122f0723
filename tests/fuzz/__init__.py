"""The fuzz suite (issue 9, "Prove it"): seeded, generated webhook requests and EventBridge events through
the real handlers, checked against reference models of what may deploy.

    make fuzz                                   # 10,000 webhook requests + 10,000 events, seed 9
    make fuzz FUZZ_SEED=7 FUZZ_CASES=20000      # another seed, more cases (FUZZ_SEED=random: a new one)
    .venv/bin/pytest tests/fuzz                 # the fixed-seed share `make test` runs (1,000 + 1,000)

The last line of `make fuzz` is `fuzz: cases=N unhandled=U deployed_from_invalid=D`, with the shortest
failing input of each kind of failure above it; FUZZ_SEED reproduces a run exactly.

- world.py: the in-process cloud (moto, the App Runner simulator, the real handler functions), eight
  watched services, one fake clock, the webhook's real 72 h freshness window.
- webhook_cases.py, event_cases.py: the generators, one function per family of mutation.
- webhook_reference.py, event_reference.py: what may be forwarded and what may deploy, decided from the
  documented shapes, independently of pushdeploy's parsers.
- values.py, mutate.py: the values and structural mutations the families draw from.
- engine.py: runs the cases and checks the oracles (see its docstring); run.py: `make fuzz`.
"""
