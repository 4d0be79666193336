# `make test` runs every test on a fresh machine: it installs the tools the tests use, then runs them.
.PHONY: test test-deps
test: test-deps
	cargo test

test-deps:
	./scripts/test-deps.sh
