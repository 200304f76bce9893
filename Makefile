# smap - build, test and install.
#
#   make                 smap/smap (and smapd/smapd once it exists)
#   make check           build, then run the whole suite under prove
#   make SAN=1 check     the same with ASan+UBSan (after "make clean")
#   make install DESTDIR=... PREFIX=...
#   make uninstall DESTDIR=... PREFIX=...
#                        removes what install put there but the
#                        configuration, the spool and the mail
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS from the environment.
#
# The build's flavour (hardened, or san for SAN=1) is kept in
# build.flavour from the first object on: a later make without SAN= keeps
# it, one that asks for the other flavour stops (make clean first), and
# make install refuses a san build.

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SHLIBDIR ?= $(PREFIX)/lib/smap

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARN = -std=gnu11 -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wno-format-nonliteral
HARDEN = -fstack-protector-strong -fstack-clash-protection -fPIE
FLAVOUR_STAMP = build.flavour
BUILT_FLAVOUR := $(shell cat $(FLAVOUR_STAMP) 2>/dev/null)
ifeq ($(origin SAN),undefined)
ifeq ($(BUILT_FLAVOUR),san)
SAN = 1
endif
endif
FLAVOUR = $(if $(filter 1,$(SAN)),san,hardened)
ifeq ($(SAN),1)
HARDEN += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SANLD = -fsanitize=address,undefined
FORTIFY =
else
FORTIFY = -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
endif
LDHARDEN = -pie -Wl,-z,relro,-z,now -Wl,--as-needed

CAP_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcap)
CAP_LIBS := $(shell $(PKG_CONFIG) --libs libcap)
SSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libssl libcrypto)
SSL_LIBS := $(shell $(PKG_CONFIG) --libs libssl libcrypto)
SECCOMP_CFLAGS := $(shell $(PKG_CONFIG) --cflags libseccomp)
SECCOMP_LIBS := $(shell $(PKG_CONFIG) --libs libseccomp)
# tinycdb, for cdb: maps (common/map.c); with --as-needed only programs
# that look maps up record it.
CDB_LIBS := $(shell $(PKG_CONFIG) --libs libcdb 2>/dev/null || echo -lcdb)

VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
ALL_CPPFLAGS = -iquote common $(FORTIFY) -D_GNU_SOURCE \
	-DSMAP_VERSION='"$(VERSION)"' $(CPPFLAGS)
ALL_CFLAGS = $(WARN) $(HARDEN) $(CAP_CFLAGS) $(SECCOMP_CFLAGS) $(SSL_CFLAGS) \
	$(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDHARDEN) $(SANLD) $(LDFLAGS)

COMMON_SRC = $(filter-out common/sandbox_gen.c,$(wildcard common/*.c))
COMMON_OBJ = $(COMMON_SRC:.c=.o)
SMAP_SRC = $(filter-out smap/main.c smap/tls_server.c,$(wildcard smap/*.c))
SMAP_OBJ = $(SMAP_SRC:.c=.o)
SMAPD_SRC = $(filter-out smapd/main.c smapd/smapq.c smapd/smap-sendmail.c,$(wildcard smapd/*.c))
SMAPD_OBJ = $(SMAPD_SRC:.c=.o)
UNIT_SRC = $(wildcard tests/unit/t_*.c)
UNIT_BIN = $(UNIT_SRC:.c=)

PROGS = smap/smap smapd/smapd smapd/smapq smapd/smap-sendmail

MODULES = smap/smap-tls.so
LIBEXEC = smap/smap-dynamic

all: $(PROGS) $(MODULES) $(LIBEXEC)

%.o: %.c $(FLAVOUR_STAMP)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# Written once, by the first object's build; changed only by make clean,
# so objects of two flavours never mix.
$(FLAVOUR_STAMP): FORCE
	@if [ -z "$(BUILT_FLAVOUR)" ]; then echo $(FLAVOUR) >$@; \
	elif [ "$(BUILT_FLAVOUR)" != $(FLAVOUR) ]; then \
		echo "make: this tree is built $(BUILT_FLAVOUR) ($(FLAVOUR_STAMP))," \
		    "not $(FLAVOUR): run 'make clean' first" >&2; exit 1; \
	fi

common/libcommon.a: $(COMMON_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

smap/libsmap.a: $(SMAP_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

# smap links no OpenSSL; it loads smap-tls.so only when TLS is on
# (smap/tls_server.h says why). It loads only the C library: tinycdb is
# linked in from Debian's libcdb_pic.a (the shared one where that is
# missing), which spares every session a library's mapping, relocation
# and page faults (bench/RESULTS.md); a tinycdb update means a rebuild.
SMAP_CDB := $(or $(filter /%,$(shell $(CC) -print-file-name=libcdb_pic.a)),$(CDB_LIBS))
# smap/smap is linked statically (-static-pie): no loader runs in a
# session (bench/RESULTS.md has what that saves). A static program loads
# no modules, so where TLS is on it runs smap/smap-dynamic in its place,
# the same smap linked with the C library, which loads smap-tls.so
# (common/static/notls.c); it is installed beside the module.
#   make STATIC=0   smap/smap is that dynamic build (as SAN=1 makes it:
#                   the sanitizers need the shared C library)
#   make LIBC=glibc the static smap linked with glibc's libc.a; the
#                   default is musl's where musl-tools is installed
# Why musl: glibc's start-up reads the CPU's features and cache sizes
# with some forty CPUID instructions, each a trap to the hypervisor on
# a virtual machine (7 us apiece on the machine of bench/RESULTS.md),
# which cost about 300 us of every session; musl's start-up has none.
# musl has no _FORTIFY_SOURCE (stack protector and stack-clash checks
# stay); its allocator keeps its metadata out of band. tinycdb is
# Debian's libcdb.a, whose few C library calls musl serves
# (common/static/cdb_musl.c has the three large-file names it lacks).
# Its objects are built in build/musl/, outside smap/, whose lines
# tests/10-budget.t counts.
SMAP_OBJ_ALL = smap/main.o smap/libsmap.a common/libcommon.a
MUSL_LIB ?= /usr/lib/x86_64-linux-musl
MUSL_CC ?= musl-gcc
ifeq ($(origin LIBC),undefined)
LIBC := $(if $(and $(wildcard $(MUSL_LIB)/rcrt1.o),$(shell command -v $(MUSL_CC))),musl,glibc)
endif
ifeq ($(LIBC),musl)
MUSL_SRC = $(SMAP_SRC) $(filter-out common/sandbox.c common/tls.c common/trusted_load.c \
	common/suffix.c,$(COMMON_SRC))
MUSL_OBJ = $(MUSL_SRC:%.c=build/musl/%.o)
MUSL_INC = build/musl/include
MULTIARCH := $(shell $(MUSL_CC) -dumpmachine)
# the kernel's headers and tinycdb's, after musl's own
$(MUSL_INC)/stamp:
	mkdir -p $(MUSL_INC)
	ln -sfn /usr/include/linux $(MUSL_INC)/linux
	ln -sfn /usr/include/asm-generic $(MUSL_INC)/asm-generic
	ln -sfn /usr/include/$(MULTIARCH)/asm $(MUSL_INC)/asm
	ln -sfn /usr/include/cdb.h $(MUSL_INC)/cdb.h
	touch $@
build/musl/%.o: %.c $(MUSL_INC)/stamp
	@mkdir -p $(@D)
	$(MUSL_CC) $(filter-out $(FORTIFY),$(ALL_CPPFLAGS)) -idirafter $(MUSL_INC) \
		$(WARN) $(HARDEN) $(CFLAGS) -MMD -MP -c -o $@ $<
build/musl/common/sandbox_smap.o: common/sandbox_smap_bpf.h
build/musl/common/conf.o: common/paths.h
build/musl/libsmap.a: $(filter build/musl/smap/%,$(MUSL_OBJ))
	rm -f $@ && $(AR) rcs $@ $^
build/musl/libcommon.a: $(filter build/musl/common/%,$(MUSL_OBJ))
	rm -f $@ && $(AR) rcs $@ $^
-include $(MUSL_OBJ:.o=.d) build/musl/smap/main.d build/musl/common/static/notls.d \
	build/musl/common/static/cdb_musl.d
STATIC_OBJ = build/musl/smap/main.o build/musl/common/static/notls.o \
	build/musl/common/static/cdb_musl.o build/musl/libsmap.a \
	build/musl/libcommon.a
STATIC_LD = $(CC) $(ALL_CFLAGS) -static-pie -nostdlib -nostartfiles \
	-Wl,-z,relro,-z,now $(LDFLAGS) -o $@ $(MUSL_LIB)/rcrt1.o \
	$(MUSL_LIB)/crti.o $(shell $(CC) -print-file-name=crtbeginS.o) $(1) \
	$(shell $(CC) -print-file-name=libcdb.a) -L$(MUSL_LIB) -lc \
	$(shell $(CC) -print-libgcc-file-name) \
	$(shell $(CC) -print-file-name=crtendS.o) $(MUSL_LIB)/crtn.o
else
STATIC_OBJ = smap/main.o common/static/notls.o smap/libsmap.a common/libcommon.a
STATIC_LD = $(CC) $(ALL_CFLAGS) -static-pie -Wl,-z,relro,-z,now \
	$(LDFLAGS) -o $@ $(1) $(CDB_LIBS) $(LDLIBS)
endif
SMAP_DYNAMIC_LD = $(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(SMAP_OBJ_ALL) \
	$(SMAP_CDB) $(LDLIBS) -ldl
STATIC ?= $(if $(filter 1,$(SAN)),0,1)
# how smap/smap was last linked (STATIC, LIBC): a change relinks it
STATIC_STAMP = smap/static.stamp
$(STATIC_STAMP): FORCE
	@[ "$$(cat $@ 2>/dev/null)" = "$(STATIC) $(LIBC)" ] || echo "$(STATIC) $(LIBC)" >$@
ifeq ($(STATIC),1)
ifeq ($(SAN),1)
$(error STATIC=1 and SAN=1: the sanitizers need the shared C library)
endif
smap/smap: $(STATIC_OBJ) $(STATIC_STAMP)
	$(call STATIC_LD,$(STATIC_OBJ))
else
smap/smap: $(SMAP_OBJ_ALL) $(STATIC_STAMP)
	$(SMAP_DYNAMIC_LD)
endif
smap/smap-dynamic: $(SMAP_OBJ_ALL)
	$(SMAP_DYNAMIC_LD)
# the same for valgrind (make bench counts its instructions): no filter
smap/smap-static-vg: $(STATIC_OBJ) tests/nosandbox.o $(STATIC_STAMP)
	$(call STATIC_LD,tests/nosandbox.o $(STATIC_OBJ))

%.pic.o: %.c $(FLAVOUR_STAMP)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fPIC -c -o $@ $<

smap/smap-tls.so: smap/tls_server.pic.o common/tls.pic.o
	$(CC) $(ALL_CFLAGS) -fPIC -shared -Wl,-z,relro,-z,now -Wl,--as-needed \
		$(SANLD) $(LDFLAGS) -o $@ $^ $(SSL_LIBS) $(LDLIBS)

# smap's seccomp filter is compiled to BPF once, here, from the rules in
# common/sandbox.c; a session loads it without libseccomp.
common/sandbox_gen: common/sandbox_gen.o common/sandbox.o
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(SECCOMP_LIBS) $(LDLIBS)
common/sandbox_smap_bpf.h: common/sandbox_gen
	./common/sandbox_gen >$@.new && mv $@.new $@
common/sandbox_smap.o: common/sandbox_smap_bpf.h

# shlib_directory's default follows SHLIBDIR (and smapq report finds
# smap-sendmail in SBINDIR); the file changes only when they do, so that
# what includes it is rebuilt exactly then.
common/paths.h: FORCE
	@printf '#define SMAP_SHLIB_DIR "%s"\n#define SMAP_SBIN_DIR "%s"\n' \
		'$(SHLIBDIR)' '$(SBINDIR)' >$@.new; \
	if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
common/conf.o tests/unit/t_conf.o smapd/smapq_review.o: common/paths.h
FORCE:

smapd/libsmapd.a: $(SMAPD_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

smapd/smapd: smapd/main.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SECCOMP_LIBS) $(SSL_LIBS) $(CDB_LIBS) $(LDLIBS)

smapd/smapq: smapd/smapq.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SECCOMP_LIBS) $(SSL_LIBS) $(CDB_LIBS) $(LDLIBS)

# smap-sendmail speaks SMTP to the local smap: no OpenSSL, no privilege.
smapd/smap-sendmail: smapd/smap-sendmail.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(CDB_LIBS) $(LDLIBS)

tests/unit/t_%: tests/unit/t_%.o tests/unit/tap.o tests/unit/fixture.o smap/libsmap.a smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SECCOMP_LIBS) $(SSL_LIBS) $(CDB_LIBS) $(LDLIBS)

# t_journal keeps the clock: days pass at once.
tests/unit/t_journal: LDLIBS += -Wl,--wrap=time,--wrap=clock_gettime

tests/unit/tap.o: tests/unit/tap.c
tests/unit/fixture.o: tests/unit/fixture.c

tests: $(UNIT_BIN)

check: all tests
	prove -f tests/*.t

# The suite without rebuilding (tools/check builds first).
check-only:
	prove -f tests/*.t

# The suite with smap and smapd run under valgrind (memcheck: errors and
# definite leaks are failures, read from each program's stderr). valgrind
# cannot run inside a seccomp filter, so these copies link
# tests/nosandbox.c in place of common/sandbox.c; everything else is the
# normal build. Slow: not part of make check.
VG_PROGS = smap/smap-vg smapd/smapd-vg smapd/smapq-vg
tests/nosandbox.o: tests/nosandbox.c
smap/smap-vg: smap/main.o tests/nosandbox.o smap/libsmap.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SMAP_CDB) $(LDLIBS)
smapd/smapd-vg: smapd/main.o tests/nosandbox.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SSL_LIBS) $(CDB_LIBS) $(LDLIBS)
smapd/smapq-vg: smapd/smapq.o tests/nosandbox.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SSL_LIBS) $(CDB_LIBS) $(LDLIBS)
check-valgrind: all tests $(VG_PROGS)
	SMAP_BIN=smap/smap-vg SMAPD_BIN=smapd/smapd-vg SMAPQ_BIN=smapd/smapq-vg \
		SMAPTEST_VALGRIND=1 prove -f tests/*.t

# Static analysis with the committed .clang-tidy; both must be silent.
LINT_SRC = $(wildcard common/*.c smap/*.c smapd/*.c)
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--std=c11 --inline-suppr -D_GNU_SOURCE -I common $(LINT_SRC)
	clang-tidy --quiet $(LINT_SRC) -- -D_GNU_SOURCE -iquote common -std=gnu11 \
		$(CAP_CFLAGS)

# ---- install ----------------------------------------------------------
# make install DESTDIR=/tmp/stage PREFIX=/usr
#   $(SBINDIR)            $(PROGS): smap, smapd, smapq, smap-sendmail
#   $(SHLIBDIR)           smap-tls.so, which smap loads when TLS is on,
#                         and smap-dynamic, the smap that does so
#   $(MANDIR)/man8, man5  the manual pages
#   $(SYSTEMDUNITDIR)     smap.socket, smap@.service, smapd.service,
#                         smapd-run.service, smapd.timer,
#                         smap-report.service, smap-report.timer (paths
#                         adjusted to SBINDIR and SYSCONFDIR)
#   $(SYSUSERSDIR)/smap.conf, $(TMPFILESDIR)/smap.conf
#   $(SYSCONFDIR)/smap/smap.conf   only when there is none: never replaced
#   $(EXAMPLEDIR)         the sample smap.conf, haproxy.cfg, xinetd,
#                         fail2ban, logcheck, logrotate (for maillog_file)
#                         and the Postfix sendmail drop-in: examples to
#                         copy, because each changes what another
#                         daemon does once it is in /etc
#   $(SPOOLDIR)           the spool (and $(MAILDIR)), modes of
#                         smap-spool(5); as root without DESTDIR, the users
#                         smap and smapd are made and smapd -P sets the
#                         owners (SPOOLDIR must be the installed config's
#                         spool_directory)
LOCALSTATEDIR ?= /var
SPOOLDIR ?= $(LOCALSTATEDIR)/spool/smap
MAILDIR ?= $(LOCALSTATEDIR)/mail/smap
DOCDIR ?= $(PREFIX)/share/doc/smap
EXAMPLEDIR ?= $(DOCDIR)/examples
SYSTEMDUNITDIR ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),/usr/lib/sysusers.d)
TMPFILESDIR ?= $(or $(shell $(PKG_CONFIG) --variable=tmpfilesdir systemd 2>/dev/null),/usr/lib/tmpfiles.d)
INSTALL ?= install
SMAP_USER ?= smap
SMAPD_USER ?= smapd
UNITS = systemd/smap.socket systemd/smap@.service systemd/smapd.service \
	systemd/smapd-run.service systemd/smapd.timer \
	systemd/smap-report.service systemd/smap-report.timer
MAN8 = smap/smap.8 smapd/smapd.8 smapd/smapq.8 smapd/smap-sendmail.8
MAN5 = smap/smap.conf.5 common/smap-spool.5
# Installed paths in units and examples follow SBINDIR and SYSCONFDIR.
INSTALL_SED = sed -e 's|/usr/sbin/|$(SBINDIR)/|g' \
	-e 's|/etc/smap/|$(SYSCONFDIR)/smap/|g'

# A SAN=1 build links libasan and is for the tests only; the suite
# installs its own into a temporary DESTDIR with ALLOW_SAN_INSTALL=1.
install: all
	@if [ $(FLAVOUR) = san ] && \
	    ! { [ -n "$(DESTDIR)" ] && [ "$(ALLOW_SAN_INSTALL)" = 1 ]; }; then \
		echo "make install: this tree is built with SAN=1 (ASan+UBSan," \
		    "for the tests), which is not to be installed: run" \
		    "'make clean && make', then 'make install'" >&2; exit 1; \
	fi
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(SYSCONFDIR)/smap $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(EXAMPLEDIR)/xinetd.d \
		$(DESTDIR)$(EXAMPLEDIR)/fail2ban/filter.d \
		$(DESTDIR)$(EXAMPLEDIR)/fail2ban/jail.d \
		$(DESTDIR)$(EXAMPLEDIR)/logcheck/ignore.d.server \
		$(DESTDIR)$(EXAMPLEDIR)/logrotate.d \
		$(DESTDIR)$(EXAMPLEDIR)/smapd.service.d
	$(INSTALL) -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -d $(DESTDIR)$(SHLIBDIR)
	$(INSTALL) -m 0644 $(MODULES) $(DESTDIR)$(SHLIBDIR)/
	$(INSTALL) -m 0755 $(LIBEXEC) $(DESTDIR)$(SHLIBDIR)/
	$(INSTALL) -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	for u in $(UNITS); do \
		$(INSTALL_SED) $$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/} && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/} || exit 1; \
	done
	$(INSTALL) -m 0644 conf/sysusers.d/smap.conf $(DESTDIR)$(SYSUSERSDIR)/smap.conf
	$(INSTALL) -m 0644 systemd/smap.tmpfiles $(DESTDIR)$(TMPFILESDIR)/smap.conf
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 0644 conf/smap.conf $(DESTDIR)$(EXAMPLEDIR)/smap.conf
	$(INSTALL) -m 0644 conf/haproxy.cfg $(DESTDIR)$(EXAMPLEDIR)/haproxy.cfg
	$(INSTALL_SED) conf/xinetd.d/smap >$(DESTDIR)$(EXAMPLEDIR)/xinetd.d/smap
	$(INSTALL) -m 0644 conf/fail2ban/filter.d/smap.conf \
		$(DESTDIR)$(EXAMPLEDIR)/fail2ban/filter.d/smap.conf
	$(INSTALL) -m 0644 conf/fail2ban/jail.d/smap.conf \
		$(DESTDIR)$(EXAMPLEDIR)/fail2ban/jail.d/smap.conf
	$(INSTALL) -m 0644 conf/logcheck/ignore.d.server/smap \
		$(DESTDIR)$(EXAMPLEDIR)/logcheck/ignore.d.server/smap
	$(INSTALL) -m 0644 systemd/smapd.service.d/sendmail-postfix.conf.example \
		$(DESTDIR)$(EXAMPLEDIR)/smapd.service.d/sendmail-postfix.conf
	$(INSTALL_SED) conf/logrotate.d/smap >$(DESTDIR)$(EXAMPLEDIR)/logrotate.d/smap
	chmod 0644 $(DESTDIR)$(EXAMPLEDIR)/xinetd.d/smap \
		$(DESTDIR)$(EXAMPLEDIR)/logrotate.d/smap
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/smap/smap.conf ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/smap/smap.conf" \
		    "(the new sample is $(DESTDIR)$(EXAMPLEDIR)/smap.conf)"; \
	else \
		echo "$(INSTALL) -m 0644 conf/smap.conf $(DESTDIR)$(SYSCONFDIR)/smap/smap.conf"; \
		$(INSTALL) -m 0644 conf/smap.conf $(DESTDIR)$(SYSCONFDIR)/smap/smap.conf; \
	fi
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SPOOLDIR) $(DESTDIR)$(SPOOLDIR)/incoming
	$(INSTALL) -d -m 1770 $(DESTDIR)$(SPOOLDIR)/incoming/tmp \
		$(DESTDIR)$(SPOOLDIR)/incoming/new
	$(INSTALL) -d -m 0700 $(DESTDIR)$(SPOOLDIR)/incoming/anvil
	$(INSTALL) -d -m 0700 $(DESTDIR)$(SPOOLDIR)/queue \
		$(DESTDIR)$(SPOOLDIR)/state $(DESTDIR)$(SPOOLDIR)/quarantine \
		$(DESTDIR)$(SPOOLDIR)/hold $(DESTDIR)$(SPOOLDIR)/journal \
		$(DESTDIR)$(MAILDIR)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		for u in $(SMAP_USER) $(SMAPD_USER); do \
		    getent passwd $$u >/dev/null && continue; \
		    systemd-sysusers $(SYSUSERSDIR)/smap.conf 2>/dev/null || \
		    useradd --system --user-group --home-dir $(SPOOLDIR) \
			--shell /usr/sbin/nologin $$u || exit 1; \
		done; \
		echo "$(SBINDIR)/smapd -c $(SYSCONFDIR)/smap/smap.conf -P"; \
		$(SBINDIR)/smapd -c $(SYSCONFDIR)/smap/smap.conf -P || exit 1; \
		chown $(SMAPD_USER):$(SMAPD_USER) $(MAILDIR) || exit 1; \
	fi

# make uninstall DESTDIR=... PREFIX=... (the same as for install) removes
# what install put in place and the directories that are smap's alone
# ($(SHLIBDIR), $(DOCDIR)); it keeps $(SYSCONFDIR)/smap/smap.conf, the
# spool and $(MAILDIR), which hold the admin's settings and mail, and the
# users. Stop and disable the units first.
UNINSTALL_FILES = $(addprefix $(SBINDIR)/,smap smapd smapq smap-sendmail) \
	$(SHLIBDIR)/smap-tls.so $(SHLIBDIR)/smap-dynamic \
	$(addprefix $(MANDIR)/man8/,smap.8 smapd.8 smapq.8 smap-sendmail.8) \
	$(addprefix $(MANDIR)/man5/,smap.conf.5 smap-spool.5) \
	$(addprefix $(SYSTEMDUNITDIR)/,$(UNITS:systemd/%=%)) \
	$(SYSUSERSDIR)/smap.conf $(TMPFILESDIR)/smap.conf \
	$(DOCDIR)/README.md \
	$(addprefix $(EXAMPLEDIR)/,smap.conf haproxy.cfg xinetd.d/smap \
	    fail2ban/filter.d/smap.conf fail2ban/jail.d/smap.conf \
	    logcheck/ignore.d.server/smap logrotate.d/smap \
	    smapd.service.d/sendmail-postfix.conf)
UNINSTALL_DIRS = $(addprefix $(EXAMPLEDIR)/,xinetd.d fail2ban/filter.d \
	    fail2ban/jail.d fail2ban logcheck/ignore.d.server logcheck \
	    logrotate.d smapd.service.d) \
	$(EXAMPLEDIR) $(DOCDIR) $(SHLIBDIR)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(UNINSTALL_FILES))
	@for d in $(addprefix $(DESTDIR),$(UNINSTALL_DIRS)); do \
		[ ! -d $$d ] || rmdir $$d 2>/dev/null || \
		    echo "uninstall: keeping $$d: it holds other files"; \
	done
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR)/smap/smap.conf," \
	    "$(DESTDIR)$(SPOOLDIR) and $(DESTDIR)$(MAILDIR)"

.PHONY: install uninstall

clean:
	rm -rf common/*.o common/*.d common/*.a common/static/*.[od] smap/smap-static-vg build/musl $(STATIC_STAMP) smap/*.o smap/*.d smap/*.a \
		smapd/*.o smapd/*.d smapd/*.a tests/unit/*.o tests/unit/*.d \
		$(UNIT_BIN) $(PROGS) $(MODULES) $(LIBEXEC) common/paths.h $(VG_PROGS) tests/nosandbox.[od] \
		common/sandbox_gen common/sandbox_smap_bpf.h $(FLAVOUR_STAMP)

.PHONY: all tests check check-only check-valgrind lint clean FORCE
.SECONDARY:

-include $(wildcard common/*.d common/static/*.d smap/*.d smapd/*.d tests/unit/*.d)

# ---- fuzzing (libFuzzer, clang only) ------------------------------------
#   make fuzz FUZZTIME=60   build the harnesses in tests/fuzz and run each
#                           for FUZZTIME seconds; new inputs go to
#                           tests/fuzz/build/scratch/NAME, never the corpus
#   make fuzz-smoke         build, then run each over its committed corpus
#                           only (seconds); findings: tests/fuzz/build/crash-*
FUZZ_CC ?= clang
FUZZTIME ?= 60
FUZZ_DIR = tests/fuzz
FUZZ_BUILD = $(FUZZ_DIR)/build
FUZZ_NAMES = addr conf spool reply session proxy
FUZZ_BINS = $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_CPPFLAGS = -iquote common -iquote smap -iquote smapd -D_GNU_SOURCE
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer $(SSL_CFLAGS) $(CAP_CFLAGS)
FUZZ_SRC = $(COMMON_SRC) $(SMAP_SRC) smapd/reply.c
FUZZ_OBJ = $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_HDR = $(wildcard common/*.h smap/*.h smapd/*.h)
FUZZ_RUNFLAGS = -rss_limit_mb=2048 -artifact_prefix=$(CURDIR)/$(FUZZ_BUILD)/
FUZZ_DICT_addr = -dict=$(CURDIR)/$(FUZZ_DIR)/smtp.dict
FUZZ_DICT_session = -dict=$(CURDIR)/$(FUZZ_DIR)/smtp.dict
# the whole input is sent before the greeting: skip the pregreet check
FUZZ_LDFLAGS_session = -Wl,--wrap=io_wait

$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZ_BUILD)/obj/common/conf.o: common/paths.h
$(FUZZ_BUILD)/obj/common/sandbox_smap.o: common/sandbox_smap_bpf.h

$(FUZZ_BUILD)/libfuzzsrc.a: $(FUZZ_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_BUILD)/libfuzzsrc.a $(FUZZ_HDR)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer,address,undefined $(FUZZ_LDFLAGS_$*) -o $@ $< \
		$(FUZZ_BUILD)/libfuzzsrc.a $(SSL_LIBS) $(CAP_LIBS) $(CDB_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/scratch/$$n || exit 1; \
		echo "fuzz_$$n: $(FUZZTIME)s"; \
		case $$n in addr) d='$(FUZZ_DICT_addr)';; \
		session) d='$(FUZZ_DICT_session)';; *) d=;; esac; \
		$(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZTIME) \
			$(FUZZ_RUNFLAGS) $$d $(CURDIR)/$(FUZZ_BUILD)/scratch/$$n \
			$(CURDIR)/$(FUZZ_DIR)/corpus/$$n || exit 1; \
	done

fuzz-smoke: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		$(FUZZ_BUILD)/fuzz_$$n -runs=0 $(FUZZ_RUNFLAGS) \
			$(CURDIR)/$(FUZZ_DIR)/corpus/$$n >$(FUZZ_BUILD)/smoke-$$n.log 2>&1 || \
			{ echo "fuzz_$$n failed: see $(FUZZ_BUILD)/smoke-$$n.log"; \
			  tail -40 $(FUZZ_BUILD)/smoke-$$n.log; exit 1; }; \
	done

.PHONY: fuzz fuzz-build fuzz-smoke

# ---- benchmarks ---------------------------------------------------------
#   make bench   tools/deps bench (installs what is missing), then bench/run.py:
#                smap (default and static builds, both spool_fsync levels,
#                three launchers) vs Postfix vs OpenSMTPD vs
#                bench/baseline.c on a loop-mounted ext4, 127.0.0.1 only;
#                prints the tables and writes bench/RESULTS.md and its
#                chart bench/receive.png. Needs root. BENCH_LOAD_WAIT=
#                seconds bounds the wait for a quiet machine (default
#                1200); BENCH_ONLY, BENCH_RECEIVERS, BENCH_SIZES,
#                BENCH_CONCS run a part (bench/run.py says how).
bench: all smap/smap-vg smap/smap-static-vg
	tools/deps bench
	python3 bench/run.py
	python3 bench/rcptmap.py

.PHONY: bench
