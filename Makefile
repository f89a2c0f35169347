# streamstack: the targets people and CI use.
#   make demo    the main job on the local emulator (no AWS account needed)
#   make test    every test, lints and template checkers (what CI runs)
#   make bench   the performance figures
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

STACK ?= stacks/tweets.yaml
ENV   ?= local
CARGO ?= cargo
BIN   := target/debug/streamstack
TEMPLATES := target/templates

.PHONY: all build demo test lint unit checkers templates validate synth schema bench clean

all: build

# One build (the dev profile) serves the binary, the tests and the benchmarks.
build:
	@echo "==> building streamstack (the first build compiles all dependencies and takes a few minutes)"
	$(CARGO) build --locked

demo: build
	@echo "==> validating $(STACK)"
	$(BIN) validate $(STACK)
	@echo "==> synthesizing the CloudFormation template of $(STACK) for environment $(ENV)"
	@mkdir -p $(TEMPLATES)
	$(BIN) synth $(STACK) --env $(ENV) -o $(TEMPLATES)/demo-$(ENV).json
	@echo
	@echo "Next:"
	@echo "  $(BIN) synth $(STACK) --env prod     # the production template"
	@echo "  $(BIN) schema > stack.schema.json    # JSON Schema for your editor"
	@echo "  make test                            # every test"

test: lint unit checkers

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

# Every shipped stack in every environment, synthesized and checked by
# cfn-lint and checkov (installed into .venv/checkers when missing).
templates: build
	@rm -rf $(TEMPLATES) && mkdir -p $(TEMPLATES)
	@for f in stacks/*.yaml; do \
	  name=$$(basename $$f .yaml); \
	  $(BIN) synth $$f -o $(TEMPLATES)/$$name.json; \
	  for env in $$($(BIN) --output json validate $$f | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["environments"]))'); do \
	    $(BIN) synth $$f --env $$env -o $(TEMPLATES)/$$name-$$env.json; \
	  done; \
	done

checkers: templates
	scripts/checkers.sh run $(TEMPLATES)

validate: build
	$(BIN) validate $(STACK)

synth: build
	$(BIN) synth $(STACK) --env $(ENV)

schema: build
	$(BIN) schema

bench: build
	scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf .venv .state
