# Everything a user runs. `make chaos` and `make test` need no earlier target.
SHELL := /bin/bash
PY := .venv/bin/python
COMPOSE := source scripts/compose.sh && compose
# Build the images only where a Docker engine answers and the local backend was not asked for.
IMAGES_IF_DOCKER := if [ "$${RIG_BACKEND:-auto}" != local ] && timeout 10 docker info >/dev/null 2>&1; then scripts/images.sh; fi

.PHONY: setup images up down logs shell reproduce check test example chaos bench soak fairness lint clean

setup:            ## venv, Python packages, redis-server and debootstrap
	@scripts/setup.sh

images: setup     ## the app, Redis and PostgreSQL images, with or without a registry
	@scripts/images.sh

up: images        ## start the reproduction stack (Flower on 127.0.0.1:5555, debug:debug)
	@scripts/up.sh

down:             ## remove the stack's containers, networks and volumes, and rig leftovers
	@$(COMPOSE) down -v --remove-orphans
	@$(PY) -m rig clean

logs:
	@$(COMPOSE) logs --tail=200 -f

shell:            ## a Django shell inside the running web container
	@$(COMPOSE) exec web python manage.py shell

reproduce: setup  ## the seed's experiment against the running stack (make up first)
	@$(PY) -m tools.reproduce

chaos: setup      ## the whole scenario catalog, with a report in reports/
	@$(IMAGES_IF_DOCKER)
	@$(PY) -m rig chaos

fairness: setup   ## prefetch fairness comparison
	@$(IMAGES_IF_DOCKER)
	@$(PY) -m rig fairness

bench: setup      ## time to verdict, catalog time, kill latency
	@$(IMAGES_IF_DOCKER)
	@$(PY) -m tools.bench

soak: setup       ## the catalog RUNS times (default 20), counting wrong verdicts
	@$(IMAGES_IF_DOCKER)
	@$(PY) -m rig soak --runs $${RUNS:-20}

check: setup      ## lint, mypy and the unit room (no broker, no Docker): under a minute
	@# Lint and the unit room side by side: neither waits for the other.
	@(.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy) & lint=$$!; \
	  .venv/bin/pytest tests/unit -q; tests=$$?; wait $$lint && exit $$tests

test: setup       ## lint, unit tests, integration tests and the catalog on both backends
	@$(IMAGES_IF_DOCKER)
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
	@scripts/test.sh

example: setup    ## build the wheel, install it in a fresh venv, run examples/shop's tests
	@$(IMAGES_IF_DOCKER)
	@scripts/example.sh

lint: setup       ## ruff and mypy
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean: down
	rm -rf build reports
