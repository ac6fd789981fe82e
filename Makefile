# Lockstep's entry points. `make demo` and `make test` are the two commands a
# fresh machine needs (see README.md); both install what they use.
GO        ?= go
BIN       := bin/lockstep
TEST_FLAGS ?= -timeout 60m

.PHONY: all build deps components demo test test-short bench lint fmt vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/lockstep

# Debian packages run as they are: Prometheus 2.42, Redis 7.0, git.
deps:
	bash hack/install-deps.sh

# Pinned upstream components, built once into the cache (~/.cache/lockstep).
components: build
	$(BIN) lab build

demo: deps components
	$(BIN) demo

test: deps components
	$(GO) test $(TEST_FLAGS) ./...

test-short:
	$(GO) test -short ./...

bench: deps components
	$(GO) test -run '^$$' -bench . -benchtime 1x $(TEST_FLAGS) ./test/e2e/...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
