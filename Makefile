# `make demo` and `make test` do all set-up they need on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VCA := $(BIN)/vca
# Debian packages the lab and the tests need. Their services must not start on the host.
HOST_PACKAGES := systemd-container mmdebstrap iproute2 openssh-client apt-cacher-ng tmux rsync \
	ca-certificates procps util-linux mount
HOST_TOOLS := systemd-nspawn mmdebstrap ip ssh ssh-keygen apt-cacher-ng tmux rsync losetup
DEMO_CLUSTER ?= vca-demo

.PHONY: help demo test lint unit host-deps venv bench clean

help:
	@echo "make demo   - provision a small local cluster, run the example, collect, tear down"
	@echo "make test   - install what the tests need, lint, run the whole suite"
	@echo "make lint   - ruff, mypy, ansible-lint"
	@echo "make bench  - benchmarks (writes bench/results/*.json)"

# Installs the lab's system tools when one is missing. policy-rc.d keeps apt-cacher-ng (and any
# other daemon) from being started on the host by the package scripts.
host-deps:
	@missing=0; for t in $(HOST_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: installing system packages needs root" >&2; exit 1; fi; \
	  echo "installing system packages: $(HOST_PACKAGES)"; \
	  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1 && cp -p /usr/sbin/policy-rc.d /tmp/.vca-policy-rc.d; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
	  trap 'if [ $$had_policy = 1 ]; then mv /tmp/.vca-policy-rc.d /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi' EXIT; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(HOST_PACKAGES) >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(BIN)/ruff check vcloud_ansible tests bench roles/*/action_plugins
	$(BIN)/mypy
	ANSIBLE_COLLECTIONS_PATH=$$($(BIN)/python -c 'import vcloud_ansible.paths as p; print(p.collections_path())') \
	  $(BIN)/ansible-lint --offline -q playbooks roles

unit: venv
	$(BIN)/python -m pytest tests/unit -q

# Two test processes, each with its own lab network and whole modules (a module's shared cluster stays
# in one process): the end-to-end tests mostly wait on nodes, so two at once fit in two cores.
TEST_WORKERS ?= 2
test: host-deps venv lint
	$(BIN)/python -m pytest -q --timeout=600 --durations=20 -n $(TEST_WORKERS) --dist loadfile

# A small local cluster end to end; it is torn down even when a step fails.
demo: host-deps venv
	@set -e; trap '$(VCA) -c $(DEMO_CLUSTER) teardown --yes' EXIT; \
	rm -rf demo-results; \
	$(VCA) -c $(DEMO_CLUSTER) provision 2; \
	$(VCA) -c $(DEMO_CLUSTER) inject examples/hello -e GREETING=hello-from-make-demo; \
	$(VCA) -c $(DEMO_CLUSTER) wait --timeout 120; \
	$(VCA) -c $(DEMO_CLUSTER) status; \
	$(VCA) -c $(DEMO_CLUSTER) collect result.txt demo-results; \
	for f in demo-results/*/result.txt; do echo "== $$f"; cat "$$f"; done

bench: host-deps venv
	$(BIN)/python bench/lab.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/collect.py
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/membership.py
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
