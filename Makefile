# sqlc is pinned in tools/go.mod, a module of its own, so it never enters the library's go.mod.
SQLC := go tool -modfile=tools/go.mod sqlc

.PHONY: generate verify test bench lint

## generate: compile queries/ into db/ with sqlc
generate:
	$(SQLC) generate

## verify: fail if db/ is stale or a query breaks sqlc's rules
verify:
	$(SQLC) diff
	$(SQLC) vet

## test: the whole suite, under lib/pq and pgx (starts a throwaway PostgreSQL unless ES_TEST_DATABASE_URL is set)
test:
	go test ./...

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	go vet ./...

## bench: the store against raw SQL, short run (under ~2 min; `go run ./cmd/es-bench` for the full one)
bench:
	go run ./cmd/es-bench --short
