# streamstack: the targets people and CI use.
#   make demo    the main job on the local emulator (no AWS account needed)
#   make test    every test, lints and template checkers (what CI runs)
#   make bench   the performance figures
#   make fuzz    the property tests for longer (FUZZ_CASES, default 20000)
#   make dist    the processor binary for the EC2 hosts (static, stripped)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

STACK ?= stacks/tweets.yaml
ENV   ?= local
CARGO ?= cargo
BIN   := target/debug/streamstack
TEMPLATES := target/templates

# The `local` environment runs on the emulator (scripts/emulator.sh); any
# other uses your AWS credentials. EMULATOR=1 or EMULATOR=0 overrides.
EMULATOR ?= $(if $(filter local,$(ENV)),1,0)
EMULATOR_PORT ?= 4566
ifeq ($(EMULATOR),1)
AWS_ENV := AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT) AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
endif
# The tests' own emulator, apart from one a person may have running for the demo.
TEST_EMULATOR := STREAMSTACK_EMULATOR_PORT=4599 STREAMSTACK_EMULATOR_STATE=.state/emulator-test

.PHONY: all build demo test lint deny unit cases emulator-test checkers templates validate synth schema bench fuzz clean \
        emulator emulator-stop up down plan status dist

all: build

# One build (the dev profile) serves the binary, the tests and the benchmarks.
build:
	@echo "==> building streamstack (the first build compiles all dependencies and takes a few minutes)"
	$(CARGO) build --locked

# The whole pipeline on the local emulator, one step after the other, for any
# stack file whose local environment replays a file: STACK=stacks/tweets.yaml
# (the default) or STACK=stacks/earthquakes.yaml. What the steps need to know
# of the stack file (its deployed name, the replay file, whether it is the
# built-in tweet transform, its aggregates) comes from
# `scripts/demo_report.py describe`, read when the recipe runs (after the
# `emulator` prerequisite has installed the virtualenv with PyYAML).
DEMO_PYTHON = $(firstword $(wildcard .venv/emulator/bin/python) python3)
demo_describe = $(shell $(DEMO_PYTHON) scripts/demo_report.py describe $(STACK) local $(1) 2>/dev/null)
DEMO_STACK  = $(call demo_describe,stack)
DEMO_REPLAY = $(call demo_describe,replay)
DEMO_KIND   = $(call demo_describe,kind)
DEMO_TOP    = $(call demo_describe,top)
# The synthetic source makes tweets: a hint for the tweet transform only.
DEMO_TWEETS = $(filter tweets,$(DEMO_KIND))

demo: build emulator
	@echo "==> [1/7] validating $(STACK)"
	$(BIN) validate $(STACK)
	@test -n "$(DEMO_REPLAY)" || { $(DEMO_PYTHON) scripts/demo_report.py describe $(STACK) local; exit 1; }
	@echo "==> [2/7] bringing $(STACK) up on the local emulator; the processor starts as a local process"
	$(AWS_ENV) $(BIN) up $(STACK) --env local
	@echo "==> [3/7] replaying the bundled data ($(DEMO_REPLAY)) into the stream"
	@mkdir -p .state && date +%s >.state/demo-replay-started
	$(AWS_ENV) $(BIN) produce $(STACK) --env local
	@echo "==> [4/7] waiting until they are stored in DynamoDB and archived in S3 (the archive trails by Firehose's buffer interval)"
	@expected=$$($(BIN) --output json transform $(DEMO_REPLAY) --stack $(STACK) -e local --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["items"])'); \
	  $(AWS_ENV) .venv/emulator/bin/python scripts/demo_report.py $(DEMO_STACK) $$expected 0 240 $(DEMO_REPLAY) "$$(cat .state/demo-replay-started)" $(DEMO_KIND)
	@echo "==> [5/7] the analysis on the fly: the top values of each aggregate ($(or $(DEMO_TOP),none declared))"
	@for t in $(DEMO_TOP); do \
	  echo "$(BIN) top $(STACK) --env local --all --limit $${t##*:} --by $${t%%:*}"; \
	  $(AWS_ENV) $(BIN) top $(STACK) --env local --all --limit $${t##*:} --by $${t%%:*}; \
	done
	@echo "==> [6/7] smoke: a canary through stream, processor, table and archive (a tweet; with a jq transform, a canary record the processor stores as it is)"
	$(AWS_ENV) $(BIN) smoke $(STACK) --env local
	@echo "==> [7/7] the processor's figures in CloudWatch (it publishes every 10 s)"
	@sleep 10
	$(AWS_ENV) $(BIN) metrics $(STACK) --env local --since 15m
	@$(AWS_ENV) $(BIN) --output json metrics $(STACK) --env local --since 15m \
	  | python3 -c 'import json,sys; s={x["id"]: x["summary"] for x in json.load(sys.stdin)["series"]}; print("metrics: %.0f records in, %.0f items stored, %.0f dead letters in the last 15 minutes" % (s["records_in"], s["items_written"], s["dead_letters"]))'
	@echo
	@echo "Next:"
	@echo "  make status STACK=$(STACK)  # the stack, every resource, the processor"
	@echo "  $(AWS_ENV) $(BIN) produce $(STACK) -e local   # replay again: the aggregates' counts stay the same"
	$(if $(DEMO_TWEETS),@echo "  $(AWS_ENV) $(BIN) produce $(STACK) -e local --synthetic --rate 500 --count 5000")
	@echo "  $(BIN) transform $(DEMO_REPLAY) --stack $(STACK) | head -1   # what the processor makes of a file"
	@echo "  $(BIN) test $(STACK)   # the stack file's transform test cases"
	@echo "  $(AWS_ENV) $(BIN) logs $(STACK) -e local --since 15m   # the processor's log lines, from CloudWatch Logs (-f follows)"
	@echo "  make plan STACK=$(STACK)    # what a change to $(STACK) would do"
	@echo "  make down STACK=$(STACK)    # tear it all down, emulator included"

# The local emulator (moto with the project's extensions), when ENV needs it.
emulator:
	@if [ "$(EMULATOR)" = 1 ]; then STREAMSTACK_EMULATOR_PORT=$(EMULATOR_PORT) scripts/emulator.sh start; fi

emulator-stop:
	@scripts/emulator.sh stop

# What ships to the EC2 hosts: a static (musl) release build, stripped, with
# thin LTO (Cargo.toml's release profile). Static, it needs no glibc on the
# host; `up` checks it anyway (architecture, glibc) before any AWS change.
# A release build of the AWS SDK takes many minutes on two cores: only this
# target and `make up` off the emulator build it, never `make test` or
# `make demo`. Graviton hosts (t4g, m7g, c6g...) need
# DIST_TARGET=aarch64-unknown-linux-musl and an aarch64 musl C toolchain.
DIST_TARGET ?= x86_64-unknown-linux-musl
DIST_BIN := target/$(DIST_TARGET)/release/streamstack
dist:
	@rustup target list --installed | grep -qx '$(DIST_TARGET)' || rustup target add $(DIST_TARGET)
	@if [ "$(DIST_TARGET)" = x86_64-unknown-linux-musl ] && ! command -v musl-gcc >/dev/null; then \
	  echo "make dist: musl-gcc is missing (the AWS SDK's TLS library compiles C): apt-get install musl-tools" >&2; exit 1; fi
	$(CARGO) build --locked --release --target $(DIST_TARGET)
	@ls -l $(DIST_BIN)

# On the emulator the processor runs here, from the dev build; on AWS the
# hosts get the release build from `make dist`.
ifeq ($(EMULATOR),1)
up: build emulator
	$(AWS_ENV) $(BIN) up $(STACK) --env $(ENV)
else
up: build dist
	$(BIN) up $(STACK) --env $(ENV) --processor-binary $(DIST_BIN)
endif

plan: build emulator
	$(AWS_ENV) $(BIN) plan $(STACK) --env $(ENV)

status: build
	$(AWS_ENV) $(BIN) status $(STACK) --env $(ENV)

# On the emulator, `down` deletes the demo's data without asking (it is
# throwaway) and stops the emulator. On AWS it asks: pass ARGS=--delete-data
# or ARGS=--keep-data.
down: build
	@if [ "$(EMULATOR)" = 1 ]; then \
	  if scripts/emulator.sh status >/dev/null 2>&1; then $(AWS_ENV) $(BIN) down $(STACK) --env $(ENV) --delete-data; fi; \
	  scripts/emulator.sh stop; \
	else \
	  $(BIN) down $(STACK) --env $(ENV) $(ARGS); \
	fi

test: lint deny unit cases emulator-test checkers

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# cargo-deny (deny.toml): licences, bans and sources of the dependency tree,
# then the RustSec advisories when github.com can be reached (a loud line
# says when they could not be checked). Installs a pinned cargo-deny into
# .tools/ the first time.
deny:
	scripts/deny.sh

# The property tests of the stack-file loader and the transform, for longer
# than CI runs them (`cargo test` runs 1,024 cases each, a few seconds).
FUZZ_CASES ?= 20000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked --test fuzz_stack_file --test fuzz_transform

# Rust tests; those of the lifecycle run against an emulator of their own,
# started here and stopped whatever the outcome.
unit:
	@$(TEST_EMULATOR) scripts/emulator.sh start
	@trap '$(TEST_EMULATOR) scripts/emulator.sh stop' EXIT; \
	  STREAMSTACK_TEST_ENDPOINT=http://127.0.0.1:4599 $(CARGO) test --locked

# The shipped stack files' own cases (`streamstack test`: their transforms on
# real records, no AWS call).
cases: build
	$(BIN) test

# The emulator extension's own tests (pytest, on a server of their own).
emulator-test:
	scripts/emulator.sh test -q

# Every shipped stack in every environment, synthesized and checked by
# cfn-lint and checkov (installed into .venv/checkers when missing).
templates: build
	@rm -rf $(TEMPLATES) && mkdir -p $(TEMPLATES)
	@for f in stacks/*.yaml; do \
	  case $$f in *.tests.yaml) continue;; esac; \
	  name=$$(basename $$f .yaml); \
	  $(BIN) synth $$f -o $(TEMPLATES)/$$name.json; \
	  for env in $$($(BIN) --output json validate $$f | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["environments"]))'); do \
	    $(BIN) synth $$f --env $$env -o $(TEMPLATES)/$$name-$$env.json; \
	  done; \
	done

checkers: templates
	scripts/checkers.sh run $(TEMPLATES)
	scripts/checkers.sh shell

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
