# smap - build, test and install.
#
#   make                 smap/smap (and smapd/smapd once it exists)
#   make check           build, then run the whole suite under prove
#   make SAN=1 check     the same with ASan+UBSan (run "make clean" between)
#   make install DESTDIR=... PREFIX=...
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS from the environment.

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARN = -std=gnu11 -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wno-format-nonliteral
HARDEN = -fstack-protector-strong -fstack-clash-protection -fPIE
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

ALL_CPPFLAGS = -iquote common $(FORTIFY) -D_GNU_SOURCE $(CPPFLAGS)
ALL_CFLAGS = $(WARN) $(HARDEN) $(CAP_CFLAGS) $(SSL_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDHARDEN) $(SANLD) $(LDFLAGS)

COMMON_SRC = $(wildcard common/*.c)
COMMON_OBJ = $(COMMON_SRC:.c=.o)
SMAP_SRC = $(filter-out smap/main.c,$(wildcard smap/*.c))
SMAP_OBJ = $(SMAP_SRC:.c=.o)
SMAPD_SRC = $(filter-out smapd/main.c,$(wildcard smapd/*.c))
SMAPD_OBJ = $(SMAPD_SRC:.c=.o)
UNIT_SRC = $(wildcard tests/unit/t_*.c)
UNIT_BIN = $(UNIT_SRC:.c=)

PROGS = smap/smap $(if $(wildcard smapd/main.c),smapd/smapd)

all: $(PROGS)

%.o: %.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

common/libcommon.a: $(COMMON_OBJ)
	$(AR) rcs $@ $^

smap/libsmap.a: $(SMAP_OBJ)
	$(AR) rcs $@ $^

smap/smap: smap/main.o smap/libsmap.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SSL_LIBS) $(LDLIBS)

smapd/libsmapd.a: $(SMAPD_OBJ)
	$(AR) rcs $@ $^

smapd/smapd: smapd/main.o smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SSL_LIBS) $(LDLIBS)

tests/unit/t_%: tests/unit/t_%.o tests/unit/tap.o smap/libsmap.a smapd/libsmapd.a common/libcommon.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(CAP_LIBS) $(SSL_LIBS) $(LDLIBS)

tests/unit/tap.o: tests/unit/tap.c

tests: $(UNIT_BIN)

check: all tests
	prove -f tests/*.t

# The suite without rebuilding (tools/check builds first).
check-only:
	prove -f tests/*.t

# Static analysis with the committed .clang-tidy; both must be silent.
LINT_SRC = $(wildcard common/*.c smap/*.c smapd/*.c)
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--std=c11 --inline-suppr -D_GNU_SOURCE -I common $(LINT_SRC)
	clang-tidy --quiet $(LINT_SRC) -- -D_GNU_SOURCE -iquote common -std=gnu11 \
		$(CAP_CFLAGS)

clean:
	rm -f common/*.o common/*.d common/*.a smap/*.o smap/*.d smap/*.a \
		smapd/*.o smapd/*.d smapd/*.a tests/unit/*.o tests/unit/*.d \
		$(UNIT_BIN) $(PROGS)

.PHONY: all tests check check-only lint clean
.SECONDARY:

-include $(wildcard common/*.d smap/*.d smapd/*.d tests/unit/*.d)
