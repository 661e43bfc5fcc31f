"""The soak (tests/soak/runner.py): calls set up and torn down continuously while RSS, file
descriptors, threads, shared-memory segments and child processes are sampled; docs/soak.md."""
