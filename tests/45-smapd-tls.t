#!/usr/bin/env python3
# 45-smapd-tls.t - smapd's SMTP client with STARTTLS and AUTH, driven as
# `smapd -1 -f` on hand-made spool files, against a private Postfix
# (listeners with and without STARTTLS, with a certificate whose SANs
# are mx.test.example, localhost and IP 127.0.0.1 or only
# mx.test.example, with AUTH through a private Dovecot auth service)
# and a scripted server (tests/lib/smtpfake.py) for what Postfix will
# not do: plaintext injected after the 220 to STARTTLS, 454, a broken
# handshake. A throwaway CA (and a second, wrong one) is made with
# openssl(1) in a temp dir. Threat model section 2.
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, free_port, listening  # noqa: E402
from postfix import Postfix, DOMAIN, Dovecot, _stop_group  # noqa: E402
from smapdtest import (Smapd, new_id, spool_bytes, place, state, smapd_log,  # noqa: E402
                       listdir, spool_path, wait_until)
from smtpfake import FakeSMTP  # noqa: E402

RCPT = "a@" + DOMAIN
PASSWORD = "Pa55-w0rd:with colon"
USER = "smapuser"

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leafA]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.test.example,DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leafB]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.test.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def skip(t, why):
    t.n += 1
    print("ok %d # SKIP %s" % (t.n, why))


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), p.stderr.decode("latin-1")[-500:]))
    return p.stdout.decode("latin-1")


def make_pki(d):
    """ca1, ca2 (wrong), leaf a (all SANs) and b (name only), both by ca1.
    World-readable: smapd reads the CA file as its own user."""
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca1", "ca2"):
        openssl("req", "-x509", "-config", cnf, "-extensions", "ca", *ec, "-days", "2",
                "-keyout", os.path.join(d, ca + ".key"), "-out", os.path.join(d, ca + ".pem"),
                "-subj", "/CN=smap test %s" % ca)
    for n, (leaf, ext) in enumerate((("a", "leafA"), ("b", "leafB"))):
        csr = os.path.join(d, leaf + ".csr")
        openssl("req", "-new", "-config", cnf, *ec, "-keyout", os.path.join(d, leaf + ".key"),
                "-out", csr, "-subj", "/CN=mx.test.example")
        openssl("x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca1.pem"), "-CAkey",
                os.path.join(d, "ca1.key"), "-set_serial", str(1000 + n), "-days", "2",
                "-extfile", cnf, "-extensions", ext, "-out", os.path.join(d, leaf + ".pem"))
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    fp = {}
    for leaf in ("a", "b"):
        out = openssl("x509", "-in", os.path.join(d, leaf + ".pem"), "-noout", "-fingerprint", "-sha256")
        fp[leaf] = out.strip().split("=", 1)[1]
    return fp


class DovecotAuth:
    """A private Dovecot with only its auth service, for Postfix's
    smtpd_sasl_type = dovecot over TCP (smtpd_sasl_path = inet:...)."""

    def __init__(self, users):
        self.users = users
        self.proc = None
        self.dir = None
        self.port = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="smaptest-auth.")
        os.chmod(self.dir, 0o755)
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            for u, p in self.users.items():
                # a hash: passwd-file fields end at ":", the password has one
                f.write("%s:{SHA256.hex}%s\n" % (u, hashlib.sha256(p.encode()).hexdigest()))
        os.chmod(users, 0o644)
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(os.path.join(self.dir, "state"))
        self.logfile = os.path.join(self.dir, "dovecot.log")
        for _ in range(3):
            self.port = free_port()
            conf = os.path.join(self.dir, "dovecot.conf")
            with open(conf, "w") as f:
                f.write("""\
# written by tests/45-smapd-tls.t
protocols = none
listen = 127.0.0.1
base_dir = %(d)s/run
state_dir = %(d)s/state
instance_name = smaptest-auth-%(port)d
log_path = %(log)s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = %(users)s
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = %(port)d
  }
}
service anvil {
  chroot =
}
""" % {"d": self.dir, "port": self.port, "log": self.logfile, "users": users})
            out = open(os.path.join(self.dir, "dovecot.out"), "ab")
            self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, close_fds=True, start_new_session=True)
            out.close()
            if wait_until(lambda: listening(self.port) or self.proc.poll() is not None, 10) and \
                    self.proc.poll() is None:
                return self
            _stop_group(self.proc)
            self.proc = None
        raise RuntimeError("dovecot auth did not listen: %s" % self.log()[-800:])

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def stop(self):
        _stop_group(self.proc)
        if self.dir and not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


class Env:
    """What every case needs: smap's spool and log, one smapd config,
    the PKI directory, the Postfix and its ports."""

    def __init__(self, t, srv, pki, fp, pf=None):
        self.t = t
        self.srv = srv
        self.pki = pki
        self.fp = fp
        self.pf = pf
        self.d = Smapd(t, srv, name="smapd-tls")
        self.n = 0

    def path(self, name):
        return os.path.join(self.pki, name)

    def reset(self):
        """Nothing left in the queue from an earlier case."""
        for sub in ("new", "queue", "state"):
            for name in listdir(spool_path(self.srv, sub)):
                try:
                    os.unlink(spool_path(self.srv, sub, name))
                except OSError:
                    pass

    def run(self, port, conf, host="[127.0.0.1]", nmsg=1):
        """One smapd -1 -f with conf for smtp:HOST:PORT; returns
        (ids, smapd's new log text, {id: state or None})."""
        self.reset()
        c = {"default_transport": "smtp:%s:%d" % (host, port), "smtp_starttls_timeout": "10s",
             "smtp_helo_timeout": "10s"}
        c.update(conf)
        self.d.set_conf(c, replace=True)
        ids = []
        for _ in range(nmsg):
            self.n += 1
            sid = new_id()
            msg = (b"From: a@b.example\r\nTo: " + RCPT.encode() + b"\r\nSubject: tls %d\r\n"
                   b"Message-ID: <tls-%d@b.example>\r\n\r\nbody %d\r\n" % (self.n, self.n, self.n))
            place(self.srv, sid, spool_bytes(sid, message=msg, rcpts=("<%s>" % RCPT,)))
            ids.append(sid)
        before = len(self.srv.log())
        rc = self.d.once()
        self.t.is_(rc, 0, "smapd -1 -f exits 0")
        log = self.srv.log()[before:]
        return ids, log, {s: state(self.srv, s) for s in ids}

    def delivered(self, ids, log, desc):
        """Each id logged status=sent and none is left in the queue."""
        ok = all(re.search(r": %s: to=<%s>, relay=.*, dsn=2\.0\.0, status=sent " % (s, re.escape(RCPT)), log)
                 for s in ids)
        self.t.ok(ok and not listdir(spool_path(self.srv, "queue")), "%s: delivered" % desc, log[-1500:])

    def deferred(self, ids, log, states, dsn, text, desc):
        """Each id deferred with dsn and text (a regex) in the log and in
        its state file."""
        for s in ids:
            m = re.search(r": %s: to=<%s>, relay=.*, dsn=(\S+), status=deferred \((.*)\)$" % (s, re.escape(RCPT)),
                          log, re.M)
            self.t.ok(m and m.group(1) == dsn and re.search(text, m.group(2)),
                      "%s: deferred, dsn=%s, /%s/ in the log" % (desc, dsn, text), log[-1500:])
            st = states.get(s) or {}
            r = st.get("rcpt", {}).get(0)
            self.t.ok(r and r[0] == "deferred" and r[1] == dsn and re.search(text, r[2]),
                      "%s: the state file says so too" % desc, repr(st.get("raw")))


def tls_line(log, how, port):
    return re.search(r" smap/smtp\[\d+\]: %s TLS connection established to [^ ]+\[127\.0\.0\.1\]:%d: "
                     r"TLSv1\.[23] with cipher \S+$" % (how, port), log, re.M)


# --------------------------------------------------------------------------
# against Postfix

def test_verify(t, e):
    pf, port = e.pf, e.pf.port
    ca1, ca2 = e.path("ca1.pem"), e.path("ca2.pem")
    ids, log, _ = e.run(port, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca1})
    e.delivered(ids, log, "verify [127.0.0.1], right CA, IP SAN")
    t.ok(tls_line(log, "Verified", port), "verify: 'Verified TLS connection established to "
         "127.0.0.1[127.0.0.1]:PORT: TLSv1.x with cipher ...' logged as smap/smtp", log[-1500:])
    t.ok(pf.wait_messages("a", 1), "verify: the message reached the Maildir")
    t.ok(pf.wait_log(r"TLS connection established from unknown\[127\.0\.0\.1\]"),
         "verify: Postfix logged the TLS session", pf.log()[-1500:])

    ids, log, _ = e.run(port, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca1}, host="localhost")
    e.delivered(ids, log, "verify smtp:localhost (name checked, SNI sent), right CA")
    t.ok(tls_line(log, "Verified", port), "verify by name: Verified", log[-1500:])

    ids, log, st = e.run(port, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca2})
    e.deferred(ids, log, st, "4.7.5", r"^TLS is required, but the certificate of host 127\.0\.0\.1\[127\.0\.0\.1\]"
               r" is not trusted: unable to get local issuer certificate", "verify, wrong CA")
    t.ok(tls_line(log, "Untrusted", port), "wrong CA: logged Untrusted", log[-1500:])

    nosan = pf.ports["nosan"]
    ids, log, st = e.run(nosan, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca1})
    e.deferred(ids, log, st, "4.7.5", r"^TLS is required, but the certificate of host 127\.0\.0\.1\[127\.0\.0\.1\]"
               r" does not match \[127\.0\.0\.1\]$", "verify [127.0.0.1], certificate without the IP SAN")
    t.ok(tls_line(log, "Trusted", nosan), "no IP SAN: logged Trusted (chain good, name not)", log[-1500:])

    ids, log, st = e.run(nosan, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca1}, host="localhost")
    e.deferred(ids, log, st, "4.7.5", r"^TLS is required, but the certificate of host localhost\[[0-9a-f.:]+\]"
               r" does not match localhost$", "verify smtp:localhost, certificate for mx.test.example only")

    ids, log, st = e.run(port, {"smtp_tls_security_level": "", "smtp_tls_CAfile": ca2}, host="localhost")
    e.deferred(ids, log, st, "4.7.5", r"is not trusted", "level \"\" on a host name is verify")
    t.is_(len(pf.messages("a")), 2, "only the two verified deliveries reached the Maildir")
    t.ok(not re.search(r"postfix/nosan/smtpd\[\d+\]: [0-9A-F]+: client=", pf.log()),
         "nothing was submitted on the listener whose certificate failed", pf.log()[-1500:])


def test_fingerprint(t, e):
    port = e.pf.port
    ids, log, _ = e.run(port, {"smtp_tls_security_level": "fingerprint",
                               "smtp_tls_fingerprint_cert_match": "00:11 , " + e.fp["a"].lower()})
    e.delivered(ids, log, "fingerprint, right pin (second in the list, lower case)")
    t.ok(tls_line(log, "Verified", port), "fingerprint match: Verified", log[-1500:])
    ids, log, st = e.run(port, {"smtp_tls_security_level": "fingerprint",
                                "smtp_tls_fingerprint_cert_match": e.fp["b"]})
    e.deferred(ids, log, st, "4.7.5", r"^TLS is required, but the certificate of host 127\.0\.0\.1\[127\.0\.0\.1\] "
               r"\(SHA-256 %s\) is not in smtp_tls_fingerprint_cert_match$" % e.fp["a"], "fingerprint, wrong pin")


def test_encrypt_may(t, e):
    port, notls = e.pf.port, e.pf.ports["notls"]
    ids, log, st = e.run(notls, {"smtp_tls_security_level": "encrypt"})
    e.deferred(ids, log, st, "4.7.4", r"^TLS is required, but was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]$",
               "encrypt, no STARTTLS offered")
    t.ok(not re.search(r"postfix/notls/smtpd\[\d+\]: [0-9A-F]+: client=", e.pf.log()),
         "encrypt without STARTTLS: no MAIL reached Postfix", e.pf.log()[-1500:])
    n = len(e.pf.messages("a"))
    ids, log, _ = e.run(notls, {"smtp_tls_security_level": "may"})
    e.delivered(ids, log, "may, no STARTTLS offered: plaintext")
    t.ok(not re.search(r"TLS connection established", log), "may in plaintext: no TLS line", log[-1500:])
    t.ok(len(e.pf.wait_messages("a", n + 1)) == n + 1, "may in plaintext: in the Maildir")
    ids, log, _ = e.run(port, {"smtp_tls_security_level": "encrypt"})
    e.delivered(ids, log, "encrypt, no CA configured (OpenSSL's default store)")
    t.ok(tls_line(log, "Untrusted", port), "encrypt: Untrusted is enough", log[-1500:])
    # one delivery process, so that both messages share its connection
    ids, log, _ = e.run(port, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": e.path("ca1.pem"),
                               "default_destination_concurrency_limit": "1"}, nmsg=2)
    e.delivered(ids, log, "two messages, one connection")
    t.is_(len(re.findall(r"TLS connection established", log)), 1,
          "connection reuse keeps the TLS session: one handshake for two messages")
    t.ok(e.pf.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 mail=2 rcpt=2 data=2 quit=1"),
         "Postfix saw EHLO, STARTTLS, EHLO, then two transactions on one connection", e.pf.log()[-1500:])


def write_passwd(e, text, mode=0o600, owner="smapd"):
    path = os.path.join(e.srv.dir, "sasl_passwd")
    with open(path, "w") as f:
        f.write(text)
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)
    return path


def test_auth(t, e):
    pf = e.pf
    auth, plain = pf.ports["auth"], pf.ports["authplain"]
    path = write_passwd(e, "# test\n[127.0.0.1]:%d %s:%s\n[127.0.0.1]:%d %s:%s\n"
                        % (auth, USER, PASSWORD, plain, USER, PASSWORD))
    ids, log, _ = e.run(auth, {"smtp_tls_security_level": "encrypt", "smtp_sasl_password_maps": path})
    e.delivered(ids, log, "AUTH PLAIN over TLS")
    t.ok(pf.wait_log(r"postfix/auth/smtpd\[\d+\]: [0-9A-F]+: client=unknown\[127\.0\.0\.1\], "
                     r"sasl_method=PLAIN, sasl_username=%s$" % USER),
         "Postfix: sasl_method=PLAIN, sasl_username=%s" % USER, pf.log()[-1500:])

    ids, log, st = e.run(plain, {"smtp_tls_security_level": "may", "smtp_sasl_password_maps": path})
    e.deferred(ids, log, st, "4.7.0", r"^SASL credentials for 127\.0\.0\.1\[127\.0\.0\.1\] not sent without TLS$",
               "AUTH offered without STARTTLS")
    m = pf.wait_log(r"postfix/authplain/smtpd\[\d+\]: disconnect from unknown\[127\.0\.0\.1\] (.*)$")
    t.ok(m and "auth" not in m.group(1) and "mail" not in m.group(1),
         "Postfix's command counts on that connection: no AUTH, no MAIL", m.group(0) if m else pf.log()[-1500:])

    bad = write_passwd(e, "[127.0.0.1]:%d %s:wrong-%s\n" % (auth, USER, PASSWORD))
    ids, log, st = e.run(auth, {"smtp_tls_security_level": "encrypt", "smtp_sasl_password_maps": bad})
    e.deferred(ids, log, st, "4.7.8", r"^SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: "
               r"535 5\.7\.8 ", "wrong password: 535 defers (never bounces)")

    loose = write_passwd(e, "[127.0.0.1]:%d %s:%s\n" % (auth, USER, PASSWORD), mode=0o644)
    ids, log, st = e.run(auth, {"smtp_tls_security_level": "encrypt", "smtp_sasl_password_maps": loose})
    e.deferred(ids, log, st, "4.7.0", r"^SASL password file refused: .*sasl_passwd: mode 0644, must be 0600 or "
               r"stricter$", "password file mode 0644")
    t.like(log, r"smap/\w+\[\d+\]: warning: smtp_sasl_password_maps: .*mode 0644",
           "password file mode 0644: a warning in the log")
    root = write_passwd(e, "[127.0.0.1]:%d %s:%s\n" % (auth, USER, PASSWORD), owner="root", mode=0o644)
    ids, log, st = e.run(auth, {"smtp_tls_security_level": "encrypt", "smtp_sasl_password_maps": root})
    e.deferred(ids, log, st, "4.7.0", r"owned by uid 0, not by smapd's uid", "password file owned by root")
    t.ok(PASSWORD not in e.srv.log() and "wrong-" not in e.srv.log(), "no password anywhere in the log")


# --------------------------------------------------------------------------
# against the scripted server

def test_fake(t, e):
    cert, key, ca1 = e.path("a.pem"), e.path("a.key"), e.path("ca1.pem")
    with FakeSMTP(t, cert, key, starttls="inject") as fs:
        ids, log, _ = e.run(fs.port, {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": ca1})
        e.delivered(ids, log, "plaintext '250 injected' after the 220 to STARTTLS: thrown away")
        s = fs.sessions[0] if fs.sessions else {}
        t.is_([c.split(b" ")[0] for c in s.get("plain", [])], [b"EHLO", b"STARTTLS"],
              "injection: EHLO and STARTTLS in plaintext, nothing else")
        t.is_([c.split(b" ")[0] for c in s.get("tls", [])][:5], [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"],
              "injection: EHLO again over TLS, then the transaction in step")
        t.is_(s.get("error"), None, "injection: the server saw no error")

    with FakeSMTP(t, cert, key, starttls="454") as fs:
        ids, log, _ = e.run(fs.port, {"smtp_tls_security_level": "may"})
        e.delivered(ids, log, "may, STARTTLS answered 454: plaintext")
        s = fs.sessions[0] if fs.sessions else {}
        t.ok(b"MAIL FROM:<a@b.example>" in [c.split(b" SIZE")[0] for c in s.get("plain", [])],
             "454 at may: MAIL in plaintext on the same connection", repr(s))
        ids, log, st = e.run(fs.port, {"smtp_tls_security_level": "encrypt"})
        e.deferred(ids, log, st, "4.7.5", r"^TLS is required, but host 127\.0\.0\.1\[127\.0\.0\.1\] refused to "
                   r"start TLS: 454 4\.7\.0 TLS not available$", "encrypt, STARTTLS answered 454")
        s = fs.sessions[-1]
        t.ok(not any(c.startswith(b"MAIL") for c in s["plain"]), "454 at encrypt: no MAIL", repr(s))

    with FakeSMTP(t, cert, key, starttls="garbage") as fs:
        ids, log, st = e.run(fs.port, {"smtp_tls_security_level": "may"})
        e.deferred(ids, log, st, "4.7.5", r"^Cannot start TLS: handshake with 127\.0\.0\.1\[127\.0\.0\.1\] failed: ",
                   "may, handshake fails")
        t.is_(len(fs.sessions), 1, "failed handshake: one connection, no plaintext retry")
        t.ok(fs.sessions and not any(c.startswith(b"MAIL") for c in fs.sessions[0]["plain"]),
             "failed handshake: no MAIL in plaintext", repr(fs.sessions))

    with FakeSMTP(t, cert, key, starttls=None, auth=True) as fs:
        path = write_passwd(e, "[127.0.0.1] %s:%s\n" % (USER, PASSWORD))
        ids, log, st = e.run(fs.port, {"smtp_tls_security_level": "may", "smtp_sasl_password_maps": path})
        e.deferred(ids, log, st, "4.7.0", r"not sent without TLS$", "scripted server: AUTH without STARTTLS")
        t.ok(fs.sessions and not any(c.upper().startswith(b"AUTH") for c in fs.sessions[0]["plain"]),
             "scripted server: no AUTH command arrived", repr(fs.sessions))

    with FakeSMTP(t, cert, key, starttls="ok", auth=True) as fs:
        path = write_passwd(e, "[127.0.0.1]:%d %s:%s\n" % (fs.port, USER, PASSWORD))
        ids, log, st = e.run(fs.port, {"smtp_tls_security_level": "encrypt", "smtp_sasl_password_maps": path})
        e.deferred(ids, log, st, "4.7.8", r"^SASL authentication failed; server .* said: 535 5\.7\.8 ",
                   "scripted server refuses AUTH: deferred")
        s = fs.sessions[0] if fs.sessions else {"tls": []}
        want = b"AUTH PLAIN " + __import__("base64").b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
        t.ok(want in s["tls"] and not any(c.startswith(b"MAIL") for c in s["tls"]),
             "AUTH PLAIN base64(\\0user\\0password) over TLS, then no MAIL", repr(s))


def main(t):
    pki = tempfile.mkdtemp(prefix="smaptest-pki.")
    os.chmod(pki, 0o755)
    try:
        fp = make_pki(pki)
        with Server(t, name="smap-45") as srv:
            e = Env(t, srv, pki, fp)
            t.run("scripted server", test_fake, t, e)
            why = Dovecot.skip()
            auth = None
            if why is None:
                auth = DovecotAuth({USER: PASSWORD})
                try:
                    auth.start()
                except RuntimeError as ex:
                    why, auth = str(ex)[:200], None
            main_cf = {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": e.path("a.pem"),
                       "smtpd_tls_key_file": e.path("a.key"), "smtpd_tls_loglevel": "1"}
            sasl = ("-o smtpd_sasl_auth_enable=yes -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject "
                    "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject")
            if auth:
                main_cf.update({"smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "inet:127.0.0.1:%d" % auth.port})
            listeners = {
                "nosan": "-o smtpd_tls_cert_file=%s -o smtpd_tls_key_file=%s" % (e.path("b.pem"), e.path("b.key")),
                "notls": "-o smtpd_tls_security_level=none",
                "auth": sasl,
                "authplain": sasl + " -o smtpd_tls_security_level=none",
            }
            try:
                with Postfix(t, users=("a",), main=main_cf, listeners=listeners, name="postfix-45") as pf:
                    e.pf = pf
                    t.run("verify", test_verify, t, e)
                    t.run("fingerprint", test_fingerprint, t, e)
                    t.run("encrypt and may", test_encrypt_may, t, e)
                    if auth:
                        t.run("AUTH", test_auth, t, e)
                    else:
                        skip(t, "AUTH against Postfix needs Dovecot's auth service: %s" % why)
            finally:
                if auth:
                    auth.stop()
            e.d.check_sanitizer()
    finally:
        shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
