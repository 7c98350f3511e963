"""`make demo` and the end-to-end tests: the whole job on the local cluster."""
