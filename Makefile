# The two commands of the README: `make run` and `make test`.
.PHONY: setup run shell test train validate bench clean

setup:
	@scripts/bootstrap

run: setup
	.venv/bin/python -m bot run

shell: setup
	.venv/bin/python -m bot shell

train: setup
	.venv/bin/python -m bot train

test: setup
	@scripts/services
	@scripts/chromium
	.venv/bin/python -m pytest

bench: setup
	@scripts/services
	.venv/bin/python -m bench.run

clean:
	rm -rf var models results .pytest_cache
