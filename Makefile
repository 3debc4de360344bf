GO ?= go
export PATH := $(PATH):/usr/local/go/bin

# Install locations (make install DESTDIR=/tmp/stage PREFIX=/usr for a package).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

.PHONY: build demo test bench man install uninstall image clean

# A static binary: CGO_ENABLED=0 leaves out the C resolver, the only cgo user (net). A plain
# `go install ./cmd/goipsec` with cgo on is static too (cmd/goipsec/static_cgo.go).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o goipsec ./cmd/goipsec

demo: build
	scripts/deps.sh demo
	./goipsec demo

test:
	scripts/test.sh

bench: build
	scripts/bench.sh

# The manual pages are generated from the code (the CLI and the configuration key table); a test
# fails when docs/man is not current.
man:
	GOIPSEC_UPDATE_DOCS=1 $(GO) test -count=1 -run TestManPagesAreCurrent ./cmd/goipsec

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR)
	install -m 0755 goipsec $(DESTDIR)$(BINDIR)/goipsec
	install -m 0644 docs/man/goipsec.8 $(DESTDIR)$(MANDIR)/man8/goipsec.8
	install -m 0644 docs/man/goipsec.conf.5 $(DESTDIR)$(MANDIR)/man5/goipsec.conf.5
	sed 's|/usr/local/bin/goipsec|$(BINDIR)/goipsec|g' packaging/goipsec.service >$(DESTDIR)$(UNITDIR)/goipsec.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/goipsec.service
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/goipsec
	install -m 0600 packaging/goipsec.conf.example $(DESTDIR)$(SYSCONFDIR)/goipsec/goipsec.conf.example
	@echo "installed; next: cp $(SYSCONFDIR)/goipsec/goipsec.conf.example $(SYSCONFDIR)/goipsec/goipsec.conf, edit it,"
	@echo "goipsec check -c $(SYSCONFDIR)/goipsec/goipsec.conf, systemctl daemon-reload && systemctl enable --now goipsec"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/goipsec $(DESTDIR)$(MANDIR)/man8/goipsec.8 $(DESTDIR)$(MANDIR)/man5/goipsec.conf.5 \
		$(DESTDIR)$(UNITDIR)/goipsec.service $(DESTDIR)$(SYSCONFDIR)/goipsec/goipsec.conf.example

# A container image FROM scratch with the static binary: no registry involved.
image: build
	buildah bud --pull=false -f packaging/Containerfile -t goipsec .

clean:
	rm -f goipsec
