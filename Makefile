# ngx_http_client_guard_module: build, test and demo entry points.
#
#   make                 module against Debian's nginx-dev (build/nginx)
#   make NGINX_SRC=DIR   module and nginx binary in an upstream source tree
#   make deps            install what the tests need (apt-get, once)
#   make unit            C unit tests t/unit/test_*.c (cmocka, ASan+UBSan)
#   make fuzz            libFuzzer targets fuzz/fuzz_*.c (clang, ASan+UBSan),
#                        each FUZZ_SECONDS (60) on a copy of its seed corpus
#                        fuzz/corpus/<name>/ (in build/fuzz/); fails on any
#                        crash (FUZZ_TARGETS="query event" to pick some)
#   make fuzz-smoke      the same, FUZZ_SMOKE_SECONDS (2) each: part of test
#   make test            deps, module, unit, fuzz-smoke, prove, then prove
#                        under ASan
#                        (TESTS=t/ PROVE_JOBS=4 TEST_ASAN=1)
#   make asan            module built with AddressSanitizer (build/asan/)
#   make test-static NGINX_SRC=DIR   the module built into nginx, and the suite
#   make test-asan       the prove suite against the ASan module
#   make demo            redis + nginx + example traffic (DEMO_SECONDS=N)
#   make bench           bench/run, when it exists
#   make release, install, uninstall, deb   see "install, package" below
#   make clean

SHELL := /bin/bash

MODULE     := ngx_http_client_guard_module
BUILD      := $(CURDIR)/build
DEB_SRC    := /usr/share/nginx/src
CC_WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer

# configure flags for an upstream tree (Debian's tree brings its conf_flags)
UPSTREAM_FLAGS ?= --with-compat --with-debug --with-threads \
	--with-http_ssl_module --with-http_realip_module \
	--with-http_stub_status_module --with-http_auth_request_module

# three jobs on two cores: the tests mostly wait (sleeping traffic, Redis
# failovers), 0.8 core used on average at two jobs
PROVE_JOBS ?= 4

# the build check, then the longest (t/56 runs three minutes in real time,
# mostly asleep; t/60 builds and installs the package), so that the others
# share the other job meanwhile; then the rest in order
LONG_TESTS := t/00-build.t t/56-status-default-surge.t t/60-deb.t \
	t/43-status-dashboard.t t/53-status-story.t t/42-status-anomaly.t \
	t/39-redis-ahead.t t/75-redis-recovery.t
TESTS      ?= $(filter $(wildcard t/*.t),$(LONG_TESTS)) \
	$(filter-out $(LONG_TESTS),$(wildcard t/*.t))

ifeq ($(NGINX_SRC),)
  NGX_DIR     := $(BUILD)/nginx
  NGX_ORIGIN  := $(DEB_SRC)
  NGX_TARGETS := modules
  NGINX_BIN   ?= /usr/sbin/nginx
  ASAN_BIN    := $(NGINX_BIN)
  ASAN_BUILD  := $(BUILD)/asan
else
  NGX_DIR     := $(abspath $(NGINX_SRC))
  NGX_ORIGIN  :=
  NGX_TARGETS := binary modules
  NGINX_BIN   ?= $(NGX_DIR)/objs/nginx
  ASAN_BUILD  := $(BUILD)/asan-upstream
  ASAN_BIN    := $(ASAN_BUILD)/nginx/objs/nginx
endif
ASAN_DIR    := $(ASAN_BUILD)/nginx
ASAN_ORIGIN := $(if $(NGINX_SRC),$(abspath $(NGINX_SRC)),$(DEB_SRC))
ASAN_LD     := --with-ld-opt='-fsanitize=address'
ASAN_TARGETS := $(if $(NGINX_SRC),binary modules,modules)

SO      := $(BUILD)/$(if $(NGINX_SRC),upstream/)$(MODULE).so
ASAN_SO := $(ASAN_BUILD)/$(MODULE).so

# --- packages ---------------------------------------------------------------

DEPS_BUILD  := gcc make libc6-dev nginx nginx-dev libhiredis-dev \
	libpcre2-dev libssl-dev zlib1g-dev openssl perl
DEPS_STATUS := prometheus chromium
DEPS_DEB    := debhelper dpkg-dev lintian
DEPS_FUZZ   := clang libclang-rt-14-dev libhiredis-dev
DEPS_TEST   := $(DEPS_BUILD) redis-server libcmocka-dev $(DEPS_FUZZ) \
	libio-socket-ssl-perl procps curl libnginx-mod-nchan $(DEPS_STATUS) \
	$(DEPS_DEB) libfaketime
DEPS_DEMO   := $(DEPS_BUILD) redis-server procps curl
DEPS_BENCH  := $(DEPS_BUILD) redis-server wrk haproxy gnuplot-nox curl libnginx-mod-http-lua linux-perf

# $(call apt_install,packages): installs the missing ones, no-op otherwise
define apt_install
	@missing=""; \
	for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null \
	        | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -q && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

.PHONY: all module deps deps-test deps-demo deps-bench deps-status deps-all \
	unit fuzz fuzz-build fuzz-smoke test prove asan test-asan prove-asan \
	test-static demo bench clean check-embedded

all: module

deps: deps-test
deps-test:
	$(call apt_install,$(DEPS_TEST))
deps-demo:
	$(call apt_install,$(DEPS_DEMO))
deps-bench:
	$(call apt_install,$(DEPS_BENCH))
deps-status:
	$(call apt_install,$(DEPS_STATUS))
deps-all:
	$(call apt_install,$(sort $(DEPS_TEST) $(DEPS_DEMO) $(DEPS_BENCH)))

# --- module -----------------------------------------------------------------

# $(call ngx_build,dir,origin,extra cc opt,extra configure args,targets,so)
# Copies origin to dir (objs/ left out) when dir is missing or was copied
# from another origin or version (marker: dir/.cg-origin),
# configures when the arguments or ./config changed since the last time
# (stamp: objs/cg-configure-args), builds the targets, copies the module
# to the .so path when it changed.
define ngx_build
	@set -euo pipefail; \
	dir='$(1)'; origin='$(2)'; \
	if [ -n "$$origin" ]; then \
	    mark="$$origin $$(md5sum < "$$origin/src/core/nginx.h")"; \
	    if [ "$$(cat "$$dir/.cg-origin" 2>/dev/null)" != "$$mark" ]; then \
	        echo "copying $$origin to $$dir"; \
	        rm -rf "$$dir"; mkdir -p "$$dir"; cp -r "$$origin"/. "$$dir"/; \
	        rm -rf "$$dir/objs" "$$dir/Makefile"; \
	        printf '%s' "$$mark" > "$$dir/.cg-origin"; \
	    fi; \
	fi; \
	cd "$$dir"; \
	if [ -f conf_flags ]; then \
	    . ./conf_flags; flags=("$${NGX_CONF_FLAGS[@]}"); \
	else \
	    flags=($(UPSTREAM_FLAGS)); \
	fi; \
	args=("$${flags[@]}" --with-cc-opt='$(CC_WARN) $(3)' $(4) \
	      --add-dynamic-module='$(CURDIR)'); \
	want="$$(printf '%q ' "$${args[@]}")"; \
	stamp=objs/cg-configure-args; \
	if [ ! -f objs/Makefile ] || [ ! -f $$stamp ] \
	   || [ "$$(cat $$stamp)" != "$$want" ] \
	   || [ '$(CURDIR)/config' -nt $$stamp ]; then \
	    conf=./configure; [ -x "$$conf" ] || conf=auto/configure; \
	    echo "configuring $$dir"; \
	    if ! $$conf "$${args[@]}" > configure.log 2>&1; then \
	        cat configure.log; exit 1; \
	    fi; \
	    printf '%s' "$$want" > $$stamp; \
	fi; \
	$(MAKE) --no-print-directory -f objs/Makefile $(5); \
	mkdir -p "$$(dirname '$(6)')"; \
	cmp -s objs/$(MODULE).so '$(6)' \
	    || { cp objs/$(MODULE).so '$(6).tmp' && mv -f '$(6).tmp' '$(6)'; }; \
	echo "built $(6)"
endef

# the files the module embeds, compiled in as C strings: the headers are
# committed, made from their source by bin/gen-c-string; "make
# check-embedded" fails when one is stale
EMBEDDED := src/cg_dashboard.h src/cg_self_html.h src/cg_lease_lua.h

module: $(EMBEDDED)
	$(call ngx_build,$(NGX_DIR),$(NGX_ORIGIN),,,$(NGX_TARGETS),$(SO))

asan: $(EMBEDDED)
	$(call ngx_build,$(ASAN_DIR),$(ASAN_ORIGIN),$(ASAN_FLAGS),$(ASAN_LD),$(ASAN_TARGETS),$(ASAN_SO))

# the two pages' common CSS and JavaScript, put into each ("/* include */")
PAGE_COMMON := src/cg_page_common.css src/cg_page_common.js

src/cg_dashboard.h: src/cg_dashboard.html $(PAGE_COMMON) bin/gen-c-string
	bin/gen-c-string src/cg_dashboard.html $@ ngx_http_cg_dashboard

src/cg_self_html.h: src/cg_self.html $(PAGE_COMMON) bin/gen-c-string
	bin/gen-c-string src/cg_self.html $@ ngx_http_cg_self_page

src/cg_lease_lua.h: src/cg_lease.lua bin/gen-c-string
	bin/gen-c-string src/cg_lease.lua $@ ngx_http_cg_lease_script

check-embedded:
	bin/gen-c-string --check

# --- unit tests ---------------------------------------------------------------

# t/unit/test_X.c is linked with src/X.c when it exists, plus any sources
# listed in UNIT_SRCS_test_X (e.g. make UNIT_SRCS_test_cg_quota=src/a.c)
# and the libraries in UNIT_LIBS_test_X.
UNIT_TESTS  := $(wildcard t/unit/test_*.c)
UNIT_SRCS_test_cg_stats := src/cg_history.c
UNIT_SRCS_test_cg_lease := src/cg_lease_terms.c
UNIT_LIBS_test_cg_reply := -l:libhiredis.a
UNIT_BINS   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_TESTS))
UNIT_CFLAGS := -std=gnu11 -g -O1 $(CC_WARN) -Isrc $(ASAN_FLAGS) \
	-fsanitize=undefined -fno-sanitize-recover=all

.SECONDEXPANSION:
$(BUILD)/unit/test_%: t/unit/test_%.c $$(wildcard src/$$*.c) \
		$$(UNIT_SRCS_test_$$*) $$(wildcard src/*.h)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(wildcard src/$*.c) \
		$(UNIT_SRCS_test_$*) -lcmocka -lm $(UNIT_LIBS_test_$*)

unit: $(UNIT_BINS)
	@set -e; for b in $(UNIT_BINS); do echo "== $$b"; $$b; done

# --- fuzzing ------------------------------------------------------------------

# fuzz/fuzz_X.c is built with the pure sources in FUZZ_SRCS_X into
# build/fuzz/fuzz_X, and runs on a copy of fuzz/corpus/X/ (what it finds
# stays in build/fuzz/corpus/X/; a crash is written as
# build/fuzz/crash-X-*, and replays with build/fuzz/fuzz_X FILE); the
# dictionary fuzz/X.dict when there is one.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 2
FUZZ_ALL     := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_ALL))
FUZZ_CFLAGS  := -std=gnu11 -g -O1 $(CC_WARN) -Isrc -Ifuzz \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_SRCS_quota_arg   := src/cg_parse.c
FUZZ_SRCS_redis_quota := src/cg_parse.c src/cg_limiter.c src/cg_lease_terms.c
FUZZ_SRCS_api_key     := src/cg_parse.c
FUZZ_SRCS_query       := src/cg_query.c
FUZZ_SRCS_accept      := src/cg_query.c
FUZZ_SRCS_event       := src/cg_query.c
FUZZ_SRCS_resp_lease  := src/cg_reply.c src/cg_lease.c \
                         src/cg_lease_terms.c
FUZZ_SRCS_resp_hash   := src/cg_reply.c src/cg_parse.c
FUZZ_LIBS_resp_lease  := -l:libhiredis.a
FUZZ_LIBS_resp_hash   := -l:libhiredis.a

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $$(FUZZ_SRCS_$$*) $$(wildcard src/*.h) \
		$$(wildcard fuzz/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS_$*) $(FUZZ_LIBS_$*) -lm

fuzz-build: $(FUZZ_BINS)

# $(call fuzz_run,seconds): every target of FUZZ_TARGETS that long, all of
# them run; fails when any found a crash (or a leak, a timeout, an OOM)
define fuzz_run
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	    c='$(FUZZ_DIR)/corpus/'$$t; \
	    rm -rf "$$c"; mkdir -p "$$c"; cp fuzz/corpus/$$t/* "$$c"/; \
	    dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	    echo "== fuzz_$$t, $(1) s"; \
	    if ! '$(FUZZ_DIR)'/fuzz_$$t -max_total_time=$(1) -timeout=10 \
	            -print_final_stats=1 $$dict \
	            -artifact_prefix='$(FUZZ_DIR)'/crash-$$t- "$$c" \
	            > '$(FUZZ_DIR)'/fuzz_$$t.log 2>&1; then \
	        tail -40 '$(FUZZ_DIR)'/fuzz_$$t.log; failed="$$failed $$t"; \
	    fi; \
	    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' \
	        '$(FUZZ_DIR)'/fuzz_$$t.log | tail -1; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed"; exit 1; fi
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-build
	$(call fuzz_run,$(FUZZ_SMOKE_SECONDS))

# --- tests ----------------------------------------------------------------------

# the whole suite runs twice: against the module as shipped, then under
# AddressSanitizer (TEST_ASAN=0 skips the second run)
TEST_ASAN ?= 1

test:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory module
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory prove
	@if [ '$(TEST_ASAN)' = 1 ]; then \
	    $(MAKE) --no-print-directory asan && \
	    $(MAKE) --no-print-directory prove-asan; \
	fi

prove:
	CG_MODULE='$(SO)' NGINX_BIN='$(NGINX_BIN)' \
	    prove -r -j$(PROVE_JOBS) --timer $(TESTS)

test-asan:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory prove-asan

prove-asan:
	CG_ASAN=1 CG_MODULE='$(ASAN_SO)' NGINX_BIN='$(ASAN_BIN)' \
	    prove -r -j$(PROVE_JOBS) --timer $(TESTS)

# the module built into nginx (--add-module) from an upstream tree, and the
# suite against that binary: make test-static NGINX_SRC=/path/to/nginx-1.x.y
STATIC_DIR := $(BUILD)/static

test-static: $(EMBEDDED)
	@test -n '$(NGINX_SRC)' || { echo "test-static needs NGINX_SRC"; exit 1; }
	@set -e; rm -rf '$(STATIC_DIR)'; mkdir -p '$(STATIC_DIR)'; \
	cp -r '$(abspath $(NGINX_SRC))'/. '$(STATIC_DIR)'/; \
	cd '$(STATIC_DIR)'; rm -rf objs Makefile; \
	conf=./configure; [ -x "$$conf" ] || conf=auto/configure; \
	$$conf $(UPSTREAM_FLAGS) --with-cc-opt='$(CC_WARN)' \
	    --add-module='$(CURDIR)' > configure.log 2>&1 \
	    || { cat configure.log; exit 1; }; \
	$(MAKE) --no-print-directory -f objs/Makefile binary
	CG_STATIC=1 NGINX_BIN='$(STATIC_DIR)/objs/nginx' \
	    prove -r -j$(PROVE_JOBS) --timer $(TESTS)

# --- demo, bench ------------------------------------------------------------------

demo:
	$(MAKE) --no-print-directory deps-demo
	$(MAKE) --no-print-directory module
	CG_MODULE='$(SO)' NGINX_BIN='$(NGINX_BIN)' bin/demo

bench:
	@if [ -x bench/run ]; then \
	    $(MAKE) --no-print-directory deps-bench module && \
	    CG_MODULE='$(SO)' NGINX_BIN='$(NGINX_BIN)' bench/run; \
	else \
	    echo "bench/run does not exist yet"; \
	fi

clean:
	rm -rf $(BUILD)

# --- install, package -------------------------------------------------------
#
#   make release         the module as shipped: Debian's build flags
#                        (dpkg-buildflags, hardening=+all), no -Werror
#                        (build/release/); NGINX_SRC=DIR for an upstream tree
#   make install         release build, load snippet, admin script, manual
#                        page and docs (DESTDIR, PREFIX=/usr/local)
#   make uninstall       removes what install put there
#   make deb             the package libnginx-mod-http-client-guard
#                        (debian/, dh, dh_nginx), then lintian on it:
#                        build/deb/*.deb
#
# -Werror (CC_WARN) is for development and tests only: a shipped build
# that stops on the next compiler's new warning helps nobody. nginx's own
# "-O -Werror" is left out as Debian's packages leave it out: with CFLAGS
# in configure's environment nginx adds none of its own (auto/cc/conf).

RELEASE_DIR := $(BUILD)/release
RELEASE_SO  := $(RELEASE_DIR)/$(MODULE).so
RELEASE_SRC := $(if $(NGINX_SRC),$(abspath $(NGINX_SRC)),$(DEB_SRC))
BUILDFLAGS  := DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get

PREFIX            ?= /usr/local
BINDIR            ?= $(PREFIX)/bin
MANDIR            ?= $(PREFIX)/share/man
DOCDIR            ?= $(PREFIX)/share/doc/client-guard
NGX_MODULES_DIR   ?= /usr/lib/nginx/modules
NGX_AVAILABLE_DIR ?= /usr/share/nginx/modules-available
NGX_ENABLED_DIR   ?= /etc/nginx/modules-enabled
LOAD_CONF         := mod-http-client-guard.conf
# the load order Debian's dh_nginx gives an http module
LOAD_PRIO         := 50

# what the package is made of (copied to build/deb/src: dpkg-buildpackage
# writes next to its source tree, and the work tree stays clean)
DEB_DIR     := $(BUILD)/deb
DEB_FILES   := config $(MODULE).c src bin docs examples debian README.md \
	CHANGES

.PHONY: release install uninstall deb deps-deb

deps-deb:
	$(call apt_install,$(DEPS_BUILD) $(DEPS_DEB))

release: $(EMBEDDED)
	@set -euo pipefail; \
	src='$(RELEASE_SRC)'; out='$(RELEASE_DIR)'; \
	cflags="$$($(BUILDFLAGS) CFLAGS) $$($(BUILDFLAGS) CPPFLAGS) -fPIC"; \
	ldflags="$$($(BUILDFLAGS) LDFLAGS) -fPIC"; \
	cd "$$src"; \
	if [ -f conf_flags ]; then \
	    . ./conf_flags; flags=("$${NGX_CONF_FLAGS[@]}"); \
	else \
	    flags=($(UPSTREAM_FLAGS)); \
	fi; \
	args=("$${flags[@]}" --with-cc-opt="$$cflags" \
	      --with-ld-opt="$$ldflags" --add-dynamic-module='$(CURDIR)' \
	      --builddir="$$out"); \
	want="$$(printf '%q ' "$${args[@]}") $$(md5sum < src/core/nginx.h)"; \
	stamp="$$out/cg-configure-args"; \
	if [ ! -f "$$out/Makefile" ] \
	   || [ "$$(cat "$$stamp" 2>/dev/null)" != "$$want" ] \
	   || [ '$(CURDIR)/config' -nt "$$stamp" ]; then \
	    conf=./configure; [ -x "$$conf" ] || conf=auto/configure; \
	    echo "configuring the release build in $$out"; \
	    mkdir -p "$$out"; \
	    if ! CFLAGS="$$cflags" $$conf "$${args[@]}" > "$$out.log" 2>&1; then \
	        cat "$$out.log"; exit 1; \
	    fi; \
	    printf '%s' "$$want" > "$$stamp"; \
	fi; \
	$(MAKE) --no-print-directory -f "$$out/Makefile" modules; \
	echo "built $(RELEASE_SO)"

install: release
	install -d '$(DESTDIR)$(NGX_MODULES_DIR)' '$(DESTDIR)$(NGX_AVAILABLE_DIR)' \
	    '$(DESTDIR)$(NGX_ENABLED_DIR)' '$(DESTDIR)$(BINDIR)' \
	    '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(DOCDIR)/docs' \
	    '$(DESTDIR)$(DOCDIR)/examples/prometheus'
	install -m 0644 '$(RELEASE_SO)' '$(DESTDIR)$(NGX_MODULES_DIR)/'
	printf 'load_module %s/%s.so;\n' '$(NGX_MODULES_DIR)' '$(MODULE)' \
	    > '$(DESTDIR)$(NGX_AVAILABLE_DIR)/$(LOAD_CONF)'
	chmod 0644 '$(DESTDIR)$(NGX_AVAILABLE_DIR)/$(LOAD_CONF)'
	ln -sfn '$(NGX_AVAILABLE_DIR)/$(LOAD_CONF)' \
	    '$(DESTDIR)$(NGX_ENABLED_DIR)/$(LOAD_PRIO)-$(LOAD_CONF)'
	install -m 0755 bin/client-guard-quota '$(DESTDIR)$(BINDIR)/'
	pod2man --section=1 --center='client guard' bin/client-guard-quota \
	    > '$(DESTDIR)$(MANDIR)/man1/client-guard-quota.1'
	install -m 0644 README.md CHANGES '$(DESTDIR)$(DOCDIR)/'
	install -m 0644 docs/*.md docs/*.png '$(DESTDIR)$(DOCDIR)/docs/'
	install -m 0644 examples/prometheus/* \
	    '$(DESTDIR)$(DOCDIR)/examples/prometheus/'
	@echo "installed; nginx -t, then reload nginx to load the module"

uninstall:
	rm -f '$(DESTDIR)$(NGX_ENABLED_DIR)/$(LOAD_PRIO)-$(LOAD_CONF)' \
	    '$(DESTDIR)$(NGX_AVAILABLE_DIR)/$(LOAD_CONF)' \
	    '$(DESTDIR)$(NGX_MODULES_DIR)/$(MODULE).so' \
	    '$(DESTDIR)$(BINDIR)/client-guard-quota' \
	    '$(DESTDIR)$(MANDIR)/man1/client-guard-quota.1'
	rm -rf '$(DESTDIR)$(DOCDIR)'

# DEB_BUILD_OPTIONS=parallel=N is passed on; lintian's tags that the
# package keeps are explained in debian/*.lintian-overrides and
# docs/operations.md
deb: $(EMBEDDED)
	@set -euo pipefail; \
	rm -rf '$(DEB_DIR)'; mkdir -p '$(DEB_DIR)/src'; \
	tar -cf - $(DEB_FILES) | tar -xf - -C '$(DEB_DIR)/src'; \
	cd '$(DEB_DIR)/src'; \
	if ! dpkg-buildpackage -b -us -uc > ../build.log 2>&1; then \
	    tail -40 ../build.log; echo "make deb: see $(DEB_DIR)/build.log"; \
	    exit 1; \
	fi; \
	cd ..; ls -1 *.deb; \
	lintian --fail-on error,warning --info *.changes
