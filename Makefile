# The one command that runs every test on a fresh machine: `make test`.
.PHONY: test
test:
	cargo test
