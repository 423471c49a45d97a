# ticketflow: every target is safe to re-run. Project-local state lives under .local/.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
UV_VERSION := 0.13.8
UV := $(CURDIR)/.local/tools/bin/uv
PY := $(CURDIR)/.venv/bin/python
export TICKETFLOW_KAFKA_BOOTSTRAP ?= 127.0.0.1:9092
export TICKETFLOW_PG_DSN ?= postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow?sslmode=disable

PROMTOOL := $(CURDIR)/.local/tools/bin/promtool

.PHONY: help setup lint typecheck check check-alerts test test-fast infra-up infra-down infra-status migrate topics schemas asyncapi openapi k8s config-docs run stop status bench bench-eventstore bench-sla-burst bench-queries bench-sla-restore chaos bench-system

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	@command -v python3 >/dev/null || { echo "error: python3 is missing; install Python 3.11+ (apt-get install python3 python3-venv)"; exit 1; }
	@python3 -m venv .local/tools || { echo "error: python3 -m venv failed; install python3-venv"; exit 1; }
	@.local/tools/bin/pip install -q "uv==$(UV_VERSION)" || { echo "error: could not install uv $(UV_VERSION) from PyPI"; exit 1; }

.venv/.synced: $(UV) uv.lock pyproject.toml cli/pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	@$(UV) sync --frozen --python python3 --all-packages
	@touch $@

setup: .venv/.synced ## install the locked Python environment into .venv

lint: setup ## ruff
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

typecheck: setup ## mypy (strict): the code, then the tests and benchmarks (their own run: test folders repeat module names)
	@$(UV) run --frozen mypy libs services cli
	@MYPYPATH=tests $(UV) run --frozen mypy tests  # tests/support is imported as `support`, as pytest does

check: lint typecheck ## lint and typecheck

check-alerts: ## the Prometheus alert rules and scrape config (deploy/prometheus) through promtool, with the rules' unit tests
	@bash deploy/scripts/promtool.sh >/dev/null
	@cd deploy/prometheus && $(PROMTOOL) check rules alerts.yml && $(PROMTOOL) check config prometheus.yml && $(PROMTOOL) test rules alerts.test.yml

migrate: setup ## apply the numbered SQL migrations of the event store and every service
	@$(PY) -m ticketflow.eventstore.migrate

topics: setup ## create every Kafka topic declared in ticketflow.messaging.topics (idempotent)
	@.venv/bin/ticketflow topics create

schemas: setup ## regenerate the JSON Schemas of the contracts into docs/schemas, and the query API's OpenAPI document
	@$(PY) -m ticketflow.contracts.schema docs/schemas
	@$(PY) -m ticketflow.queries openapi > docs/queries-openapi.json

asyncapi: setup ## regenerate docs/asyncapi.json (AsyncAPI 3) from the topic declarations and the contracts
	@$(PY) -m ticketflow.messaging.asyncapi docs/asyncapi.json

openapi: setup ## regenerate docs/openapi/*.json from the services' HTTP routes
	@$(PY) -m ticketflow.cli.openapi docs/openapi

k8s: setup ## regenerate deploy/k8s/base (kustomize) from the services, the topic declarations and the desks
	@$(PY) -m ticketflow.cli.k8s deploy/k8s/base

config-docs: setup ## regenerate the settings tables of docs/configuration.md from the services' settings objects
	@$(PY) -m ticketflow.runtime.configdoc docs/configuration.md

test: setup infra-up ## set up everything and run the whole suite against real Kafka and PostgreSQL
	@bash deploy/scripts/chromium.sh
	@$(MAKE) --no-print-directory migrate topics
	@$(PY) -m pytest -m "not load" $(PYTEST_ARGS)

test-fast: setup ## pure tests only (no Kafka, no PostgreSQL)
	@$(PY) -m pytest -m "not load and not pg and not kafka and not e2e" -q $(PYTEST_ARGS)

run: setup infra-up ## the whole system: infrastructure, migrations, topics, all services, and a demo conversation
	@$(MAKE) --no-print-directory migrate topics
	@bash deploy/scripts/services-up.sh
	@bash deploy/scripts/demo.sh

stop: ## stop the services started by make run (infrastructure stays: make infra-down)
	@bash deploy/scripts/services-down.sh

status: infra-status ## infrastructure and services: what runs, what answers
	@bash deploy/scripts/services-status.sh

bench-eventstore: setup infra-up ## event store: durable appends/s and p99 vs copy_records_to_table (the ceiling)
	@$(MAKE) --no-print-directory migrate
	@$(PY) tests/load/eventstore/bench_eventstore.py $(BENCH_ARGS)

infra-up: ## start PostgreSQL and Kafka on 127.0.0.1 (no Docker; see docs/infrastructure.md)
	@bash deploy/scripts/infra-up.sh

infra-down: ## stop only what infra-up started (data stays; reset Kafka: rm -rf .local/kafka/data)
	@bash deploy/scripts/infra-down.sh

infra-status: ## what runs where, who started it, whether it answers
	@bash deploy/scripts/infra-status.sh

bench-queries: setup infra-up ## query API: p99 at 1,000 requests/s over 1,000,000 tickets vs the same SQL straight to PostgreSQL; projection catch-up vs reading the log (its own database, built once, then reused; short: BENCH_QUERIES_ARGS="--tickets 20000 --seconds 10")
	@$(PY) tests/load/queries/bench_queries.py $(BENCH_QUERIES_ARGS)

bench-calendar: setup ## business-calendar arithmetic: ops/s vs the naive minute-walking reference
	@$(PY) tests/load/calendar/bench_calendar.py

bench-sla: setup ## SLA timer engine vs call_later, heapq, APScheduler, PG SKIP LOCKED (needs PG; short: BENCH_SLA_ARGS="--timers 200000")
	@$(PY) tests/load/sla/bench_sla_timers.py $(BENCH_SLA_ARGS)

preflight-scope-report: setup ## preflight scope classifier: precision/recall per class, dev and held-out
	@$(PY) tests/preflight/scope_report.py

test-notifications: setup infra-up ## notifications: templates, channels against local platform fakes, delivery ledger (PG)
	@$(PY) -m pytest tests/notifications -q $(PYTEST_ARGS)

bench-notifications: setup infra-up ## notifications: msgs/s through the exactly-once engine vs a bare webhook POST (short: BENCH_NOTIFICATIONS_ARGS="--n 300")
	@$(PY) tests/load/notifications/bench_delivery.py $(BENCH_NOTIFICATIONS_ARGS)

test-intake: setup infra-up ## intake: decisions, adapters, the service as a process on real PostgreSQL and Kafka
	@$(PY) -m pytest tests/intake -q

bench-intake: setup infra-up ## intake: BotX webhook (wrk, and open loop at 3,000/s) and chat.inbound msgs/s, p50/p99 vs a do-nothing route (short: BENCH_INTAKE_ARGS="--duration 3 --openloop-duration 5 --topic-messages 5000")
	@$(PY) tests/load/intake/bench_intake.py $(BENCH_INTAKE_ARGS)

test-preflight: setup infra-up ## preflight: eligibility, outcomes, checks on HTTPS 127.0.0.1, the service on real PostgreSQL and Kafka
	@$(PY) -m pytest tests/preflight -q $(PYTEST_ARGS)

test-sla: setup infra-up ## sla service: decider (given/when/then, hypothesis), engine on PostgreSQL, real-broker e2e, kill -9 recovery
	@$(PY) -m pytest tests/sla -q $(PYTEST_ARGS)

bench-sla-burst: setup infra-up ## SLA firing path alone: 50,000 due in the same second, stored, in rounds (short: BENCH_SLA_BURST_ARGS="--fire 5000 --rounds 1")
	@$(PY) tests/load/sla/bench_fire_burst.py $(BENCH_SLA_BURST_ARGS)

bench-sla-restore: setup infra-up ## SLA cold restore through the service's consumer: stored timers vs derived (the baseline), 2.5 M tickets (short: BENCH_SLA_RESTORE_ARGS="--resident 250000 --rounds 1")
	@$(PY) tests/load/sla/bench_restore.py $(BENCH_SLA_RESTORE_ARGS)

bench-sla-service: setup infra-up ## whole SLA service through the real broker: events/s, armed p99, firings/s, CPU (short: BENCH_SLA_SERVICE_ARGS="--resident 20000 --events 40000 --fire 5000")
	@$(PY) tests/load/sla/bench_service.py $(BENCH_SLA_SERVICE_ARGS)

bench-routing: setup infra-up ## routing: decisions/s and p99 through Kafka (+PostgreSQL) vs the pure decision function (short: BENCH_ROUTING_ARGS="--tickets 2000")
	@$(PY) tests/load/routing/bench_routing.py $(BENCH_ROUTING_ARGS)

bench-telemetry: setup ## in-process: the HTTP span and request metrics per request (ticketflow's middleware vs instrumentation-asgi vs none); a span, its OTLP encoding, a traced query
	@$(PY) tests/load/telemetry/bench_http_edge.py $(BENCH_TELEMETRY_ARGS)
	@$(PY) tests/load/telemetry/bench_span_costs.py

bench-notifications-e2e: setup infra-up ## notifications end to end (Kafka -> service -> local Bitrix24 server): msgs/s, p99 vs a plain consume->POST ceiling; 30 s destination outage (short: BENCH_NOTIFICATIONS_E2E_ARGS="--seconds 3 --backlog 3000 --down 5")
	@$(PY) tests/load/notifications/bench_e2e.py $(BENCH_NOTIFICATIONS_E2E_ARGS)

chaos: setup ## faults under load, one at a time (each service SIGKILLed, PostgreSQL and Kafka stopped, BotX slow then dead), on a private broker and cluster; counts per fault into docs/reliability.md (make test runs a shorter version)
	@TICKETFLOW_CHAOS=full $(PY) -m pytest tests/chaos -q -p no:cacheprovider $(PYTEST_ARGS)

bench-system: setup ## whole pipeline: new tickets/s intake -> preflight -> routing -> SLA -> the registered reply at the fake BotX, p50/p99, CPU per ticket per service (short: BENCH_SYSTEM_ARGS="--rate 20 --seconds 10")
	@$(PY) tests/load/system/bench_system.py $(BENCH_SYSTEM_ARGS)
