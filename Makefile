# Convenience targets; the README's commands are the contract.
.PHONY: run test fuzz bench bench-peers docs

run:
	go run ./cmd/vigil run

test:
	./scripts/test.sh

fuzz:
	./scripts/fuzz.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./internal/... | tee bench.out

bench-peers:
	go run ./bench

docs:
	go test ./internal/configdoc -update
