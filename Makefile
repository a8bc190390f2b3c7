# The two commands of the README: `make run` and `make test` (and `make check`, the quick one).
.PHONY: setup run shell test check lint train validate bench clean

setup:
	@scripts/bootstrap

run: setup
	.venv/bin/python -m bot run

shell: setup
	.venv/bin/python -m bot shell

train: setup
	.venv/bin/python -m bot train

test: setup lint
	@scripts/services
	@scripts/debian-packages
	.venv/bin/python -m pytest

# The unit tier and the linter: no stack, no browser, no trained model
# (PostgreSQL and Redis are used, as by `make test`).
check: setup lint
	@scripts/services
	@scripts/debian-packages
	.venv/bin/python -m pytest -m "not integration and not model"

LINT_PATHS ?= bot actions connectors bench migrations tests
lint: setup
	.venv/bin/ruff check $(LINT_PATHS)

bench: setup
	@scripts/services
	.venv/bin/python -m bench.run

clean:
	rm -rf var models results .pytest_cache
