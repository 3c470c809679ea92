# Convenience targets; the README's commands are the contract.
.PHONY: run test fuzz bench docs

run:
	go run ./cmd/vigil run

test:
	./scripts/test.sh

fuzz:
	./scripts/fuzz.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./internal/... | tee bench.out

docs:
	go test ./internal/configdoc -update
