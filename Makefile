GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build demo test bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o goipsec ./cmd/goipsec

demo: build
	scripts/deps.sh demo
	./goipsec demo

test:
	scripts/test.sh

bench: build
	scripts/bench.sh

clean:
	rm -f goipsec
