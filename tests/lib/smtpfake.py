"""smtpfake - a scripted SMTP server with STARTTLS for smapd's TLS tests
(stdlib only).

  with FakeSMTP(t, cert, key, starttls="ok") as fs:
      fs.port              listening on 127.0.0.1:port
      fs.sessions          one dict per connection: "plain" (commands
                           before TLS), "tls" (commands over TLS),
                           "messages" (bytes after DATA), "error"
  starttls: "ok"      220, then the handshake
            "inject"  220 and "250 injected" in the same write, in
                      plaintext, then the handshake: a client that reads
                      the extra line as a reply gets out of step
            "454"     454 4.7.0 TLS not available
            "garbage" 220, then bytes that are no TLS, then close
            None      STARTTLS is not offered (500 if sent anyway)
  auth: offer "AUTH PLAIN LOGIN" in every EHLO reply (never accepted).
  xforward: offer "XFORWARD NAME ADDR PROTO HELO"; "refuse" answers
            XFORWARD with 450 4.7.1, anything else with 250.
  rcpt_reply: {b"user@domain": b"550 5.1.1 no such user"}: that reply to
            RCPT TO:<user@domain> (any case); a DATA with no recipient
            accepted then gets 554 5.5.1. Every session also records
            "transactions": [{"mail": line, "rcpt": [accepted lines],
            "data": bytes}] for each message it took.
  cert and key may be None when STARTTLS is not offered.

Every socket operation has a timeout; threads are daemons; nothing
talks to anything but 127.0.0.1.
"""

import socket
import ssl
import threading

from smaptest import free_port

EHLO_BASE = [b"fake.test", b"PIPELINING", b"8BITMIME", b"SIZE 10000000"]


class FakeSMTP:
    def __init__(self, t, cert, key, starttls="ok", auth=False, xforward=None, rcpt_reply=None):
        self.t = t
        self.rcpt_reply = {k.lower(): v for k, v in (rcpt_reply or {}).items()}
        self.xforward = xforward
        self.cert = cert
        self.key = key
        self.mode = starttls
        self.auth = auth
        self.sessions = []
        self.sock = None
        self.port = None
        self.stopped = False
        self.thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def start(self):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.cert:
            self.ctx.load_cert_chain(self.cert, self.key)
        for _ in range(5):
            self.port = free_port()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                s.close()
                continue
            s.listen(8)
            s.settimeout(0.2)
            self.sock = s
            break
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopped = True
        if self.thread:
            self.thread.join(5)
        if self.sock:
            self.sock.close()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sess = {"plain": [], "tls": [], "messages": [], "transactions": [], "error": None}
            self.sessions.append(sess)
            threading.Thread(target=self._serve, args=(c, sess), daemon=True).start()

    def _refused(self, line):
        """The configured reply for this RCPT line, or None."""
        a, _, b = line.partition(b"<")
        addr = b.partition(b">")[0].lower()
        return self.rcpt_reply.get(addr)

    def _ehlo(self, tls):
        words = list(EHLO_BASE)
        if self.mode is not None and not tls:
            words.append(b"STARTTLS")
        if self.auth:
            words.append(b"AUTH PLAIN LOGIN")
        if self.xforward:
            words.append(b"XFORWARD NAME ADDR PROTO HELO")
        out = b""
        for i, w in enumerate(words):
            out += b"250" + (b" " if i == len(words) - 1 else b"-") + w + b"\r\n"
        return out

    def _serve(self, conn, sess):
        conn.settimeout(10)
        f = _Lines(conn)
        tls = False
        txn = None
        try:
            conn.sendall(b"220 fake.test ESMTP\r\n")
            while True:
                line = f.line()
                if line is None:
                    return
                sess["tls" if tls else "plain"].append(line)
                verb = line.split(b" ", 1)[0].upper()
                if verb in (b"EHLO", b"LHLO"):
                    conn.sendall(self._ehlo(tls))
                elif verb == b"STARTTLS" and not tls and self.mode is not None:
                    if self.mode == "454":
                        conn.sendall(b"454 4.7.0 TLS not available\r\n")
                        continue
                    if self.mode == "garbage":
                        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                        conn.sendall(b"this is not TLS\r\n" * 20)
                        return
                    extra = b"250 injected\r\n" if self.mode == "inject" else b""
                    conn.sendall(b"220 2.0.0 Ready to start TLS\r\n" + extra)
                    if f.buffered():
                        sess["error"] = "client pipelined after STARTTLS: %r" % f.buffered()
                        return
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                    f = _Lines(conn)
                    tls = True
                elif verb == b"RCPT" and self._refused(line):
                    conn.sendall(self._refused(line) + b"\r\n")
                elif verb == b"MAIL" or verb == b"RCPT" or verb == b"RSET" or verb == b"NOOP":
                    if verb == b"MAIL":
                        txn = {"mail": line, "rcpt": [], "data": None}
                    elif verb == b"RCPT" and txn is not None:
                        txn["rcpt"].append(line)
                    elif verb == b"RSET":
                        txn = None
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"DATA" and self.rcpt_reply and not (txn and txn["rcpt"]):
                    conn.sendall(b"554 5.5.1 Error: no valid recipients\r\n")
                    txn = None
                elif verb == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    body = []
                    while True:
                        l2 = f.line()
                        if l2 is None:
                            return
                        if l2 == b".":
                            break
                        body.append(l2)
                    sess["messages"].append(b"\r\n".join(body))
                    if txn is not None:
                        txn["data"] = sess["messages"][-1]
                        sess["transactions"].append(txn)
                    txn = None
                    conn.sendall(b"250 2.0.0 Ok: queued as FAKE\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                elif verb == b"XFORWARD" and self.xforward:
                    conn.sendall(b"450 4.7.1 Error: XFORWARD refused\r\n" if self.xforward == "refuse"
                                 else b"250 2.0.0 Ok\r\n")
                elif verb == b"AUTH":
                    conn.sendall(b"535 5.7.8 Error: authentication failed\r\n")
                else:
                    conn.sendall(b"500 5.5.2 Error: command not recognized\r\n")
        except (OSError, ssl.SSLError) as e:
            sess["error"] = repr(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass


class _Lines:
    """CRLF lines from a socket, at most 4096 bytes each."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def buffered(self):
        return self.buf

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 4096:
                return None
            try:
                d = self.conn.recv(4096)
            except (OSError, ssl.SSLError):
                return None
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line
