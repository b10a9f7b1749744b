# Builds and installs the C library: libchordsip.so (soname with the ABI
# major), libchordsip.a, include/chordsip.h and chordsip.pc.
#   make                      build (release)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make uninstall PREFIX=...
# Then: cc app.c $(pkg-config --cflags --libs chordsip)

PREFIX ?= /usr/local
LIBDIR ?= lib
DESTDIR ?=
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
TARGET_DIR ?= target
REL := $(TARGET_DIR)/release
DEST := $(DESTDIR)$(PREFIX)

.PHONY: all lib install uninstall

all: lib

lib:
	$(CARGO) build --release --lib

install: lib
	install -d $(DEST)/$(LIBDIR) $(DEST)/include $(DEST)/$(LIBDIR)/pkgconfig
	install -m 0755 $(REL)/libchordsip.so $(DEST)/$(LIBDIR)/libchordsip.so.$(VERSION)
	ln -sf libchordsip.so.$(VERSION) $(DEST)/$(LIBDIR)/libchordsip.so.$(MAJOR)
	ln -sf libchordsip.so.$(MAJOR) $(DEST)/$(LIBDIR)/libchordsip.so
	install -m 0644 $(REL)/libchordsip.a $(DEST)/$(LIBDIR)/libchordsip.a
	install -m 0644 include/chordsip.h $(DEST)/include/chordsip.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		chordsip.pc.in > $(DEST)/$(LIBDIR)/pkgconfig/chordsip.pc

uninstall:
	rm -f $(DEST)/$(LIBDIR)/libchordsip.so $(DEST)/$(LIBDIR)/libchordsip.so.$(MAJOR) \
		$(DEST)/$(LIBDIR)/libchordsip.so.$(VERSION) $(DEST)/$(LIBDIR)/libchordsip.a \
		$(DEST)/include/chordsip.h $(DEST)/$(LIBDIR)/pkgconfig/chordsip.pc
