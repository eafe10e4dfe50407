"""End-to-end tests: the real command line and the real HTTP server, in subprocesses."""
