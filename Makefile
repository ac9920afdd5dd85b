# casefhir: see README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
PKGS      := ./...
FUZZTIME  ?= 30s
NPM_DIRS  := server/auth/testdata/oidc server/testdata/clients

.PHONY: run build test test-go bench fuzz lint check clean node-deps browser-deps demo screenshots

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/casefhir ./cmd/casefhir

run: build
	./bin/casefhir serve --auth=off

# Node packages the tests use (the OIDC provider, real FHIR clients),
# installed from the committed lock files.
node-deps:
	@for d in $(NPM_DIRS); do \
	  if [ -f $$d/package-lock.json ] && [ ! -d $$d/node_modules ]; then \
	    echo "npm ci in $$d"; (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	  fi; \
	done

# Debian's Chromium for the browser tests of the app (installed once per
# machine; never a browser download). Needs root (or sudo) when missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	}

# Load the two demo cases into a running server (make run in another shell,
# which built bin/casefhir; the running binary is not rebuilt under it).
demo:
	@[ -x bin/casefhir ] || $(MAKE) build
	./bin/casefhir demo --url $${CASEFHIR_URL:-http://127.0.0.1:8080/fhir}

# Regenerate the app's screenshots in docs/ (a real browser, a real launch).
screenshots: node-deps browser-deps
	CASEFHIR_SCREENSHOTS=$(CURDIR)/docs $(GO) test ./server -run '^TestAppBrowser$$' -count=1

# -race keeps its data-race detection; checkptr (which -race turns on) is
# off because it checks every pointer operation of the pure-Go SQLite
# translation and makes the embedded store's tests run for tens of minutes.
test: build node-deps browser-deps
	$(GO) vet $(PKGS)
	$(GO) test -race -gcflags=all=-d=checkptr=0 -count=1 -timeout 30m $(PKGS)

bench: build
	$(GO) run ./cmd/benchfhir -export -scale 10000,100000,1000000 -budget 90m -out docs/benchmarks.md

fuzz:
	$(GO) test ./fhir/codec -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fhir/codec -run '^$$' -fuzz '^FuzzApplyJSONPatch$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fhir -run '^$$' -fuzz '^FuzzParseReference$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fhir -run '^$$' -fuzz '^FuzzParseETag$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fhir/search -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fhir/fhirpath -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server/interaction -run '^$$' -fuzz '^FuzzParseRoute$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server/auth -run '^$$' -fuzz '^FuzzParseScope$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server/auth -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

check: lint test

clean:
	rm -rf bin casefhir-data
