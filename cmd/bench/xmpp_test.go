package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What ejabberd 23.01 sent on 127.0.0.1:5222 (starttls: false), verbatim but for ids.
const (
	ejStreamHeader = `<?xml version='1.0'?><stream:stream id='12655511653708915194' version='1.0' xml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' xmlns='jabber:client'>`
	ejSASLFeatures = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>DIGEST-MD5</mechanism><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-512</mechanism><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>`
	ejSuccess      = `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
	ejFailure      = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>`
	ejBindFeatures = `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>`
	ejBindResult   = `<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind></iq>`
	ejResult       = `<message to='%[1]s' from='%[2]s'><result id='%[4]d' queryid='%[3]s' xmlns='urn:xmpp:mam:2'><forwarded xmlns='urn:xmpp:forward:0'><message to='%[2]s' from='%[5]s' type='chat' id='9339548270873390636' xmlns='jabber:client'><archived by='%[2]s' id='%[4]d' xmlns='urn:xmpp:mam:tmp'/><stanza-id by='%[2]s' id='%[4]d' xmlns='urn:xmpp:sid:0'/><body>%[6]s</body></message><delay from='localhost' stamp='2026-11-21T09:21:26.183789Z' xmlns='urn:xmpp:delay'/></forwarded></result></message>`
	ejFin          = `<iq xml:lang='en' to='%[1]s' from='%[2]s' type='result' id='%[3]s'><fin complete='false' xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>2390</count><first>1795252886183789</first><last>1795252886218728</last></set></fin></iq>`
	ejQueryError   = `<iq xml:lang='en' to='%[1]s' from='%[2]s' type='error' id='%[3]s'><query xmlns='urn:xmpp:mam:2' queryid='%[3]s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>@@@</value></field></x></query><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Bad value of field &apos;with&apos; of type &apos;urn:xmpp:mam:1&apos;</text></error></iq>`
	ejBody         = `Hello, is early check-in possible? We arrive around 10:00.`

	fakeFull = "p1@localhost/172879460290137152112530"
	fakeBare = "p1@localhost"
)

func ejMessage(queryid string, i int, body string) string {
	return fmt.Sprintf(ejResult, fakeFull, fakeBare, queryid, 1795252886183789+i, "g1@localhost", body)
}

// fakePeer is the server's side of one client connection.
type fakePeer struct {
	c    net.Conn
	r    *bufio.Reader
	seen bytes.Buffer // everything the client sent so far
	mark int          // seen[:mark] was returned by expect already
}

// expect reads until what the client sent since the previous expect contains sub, and returns it.
func (p *fakePeer) expect(sub string) (string, error) {
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(p.seen.String()[p.mark:], sub) {
		b, err := p.r.ReadByte()
		if err != nil {
			return p.seen.String()[p.mark:], fmt.Errorf("waiting for %q: %w", sub, err)
		}
		p.seen.WriteByte(b)
	}
	s := p.seen.String()[p.mark:]
	p.mark = p.seen.Len()
	return s, nil
}

// send writes each part with its own write, as ejabberd does for separate stanzas.
func (p *fakePeer) send(parts ...string) error {
	for _, s := range parts {
		if _, err := p.c.Write([]byte(s)); err != nil {
			return err
		}
	}
	return nil
}

// startFake runs script against the first client of a listener on 127.0.0.1:0. wait returns
// everything the client sent and the script's error.
func startFake(t *testing.T, script func(p *fakePeer) error) (addr string, wait func() (string, error)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type result struct {
		sent string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		p := &fakePeer{c: c, r: bufio.NewReader(c)}
		err = script(p)
		done <- result{p.seen.String(), err}
	}()
	return ln.Addr().String(), func() (string, error) {
		select {
		case r := <-done:
			return r.sent, r.err
		case <-time.After(10 * time.Second):
			return "", errors.New("fake server did not finish")
		}
	}
}

var (
	reID      = regexp.MustCompile(`<iq type='set' id='([^']+)'`)
	reQueryID = regexp.MustCompile(`<query xmlns='urn:xmpp:mam:2' queryid='([^']+)'>`)
	reWith    = regexp.MustCompile(`<field var='with'><value>([^<]*)</value></field>`)
	reMax     = regexp.MustCompile(`<set xmlns='http://jabber.org/protocol/rsm'><max>(\d+)</max><before/></set>`)
)

// fakeLogin plays ejabberd's side of the login of user/password up to the bind result.
func fakeLogin(p *fakePeer, user, password string) error {
	if _, err := p.expect("version='1.0'>"); err != nil {
		return err
	}
	if err := p.send(ejStreamHeader, ejSASLFeatures); err != nil {
		return err
	}
	auth, err := p.expect("</auth>")
	if err != nil {
		return err
	}
	want := "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>"
	if auth != want {
		return fmt.Errorf("auth = %q, want %q", auth, want)
	}
	if err := p.send(ejSuccess); err != nil {
		return err
	}
	if _, err := p.expect("version='1.0'>"); err != nil {
		return err
	}
	if err := p.send(ejStreamHeader, ejBindFeatures); err != nil {
		return err
	}
	bind, err := p.expect("</iq>")
	if err != nil {
		return err
	}
	m := reID.FindStringSubmatch(bind)
	if m == nil || !strings.Contains(bind, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'") {
		return fmt.Errorf("not a bind request: %q", bind)
	}
	return p.send(fmt.Sprintf(ejBindResult, m[1], fakeFull))
}

// fakeQuery reads a MAM query and answers with min(max, archived) results (in three writes),
// with extra before the results, then the final iq. It returns the request.
func fakeQuery(p *fakePeer, archived int, extra string) (string, error) {
	req, err := p.expect("</iq>")
	if err != nil {
		return req, err
	}
	id, qid, with, mx := reID.FindStringSubmatch(req), reQueryID.FindStringSubmatch(req), reWith.FindStringSubmatch(req), reMax.FindStringSubmatch(req)
	if id == nil || qid == nil || with == nil || mx == nil {
		return req, fmt.Errorf("not a MAM query: %q", req)
	}
	n, _ := strconv.Atoi(mx[1])
	var msgs []string
	for i := range min(n, archived) {
		msgs = append(msgs, ejMessage(qid[1], i, ejBody))
	}
	third := len(msgs) / 3
	err = p.send(extra, strings.Join(msgs[:third], ""), strings.Join(msgs[third:2*third], ""), strings.Join(msgs[2*third:], ""),
		fmt.Sprintf(ejFin, fakeFull, fakeBare, id[1]))
	return req, err
}

func TestXMPPLoginAndQuery(t *testing.T) {
	ping := `<iq from='localhost' to='` + fakeFull + `' type='get' id='ping-7'><ping xmlns='urn:xmpp:ping'/></iq>`
	var reqs []string
	addr, wait := startFake(t, func(p *fakePeer) error {
		if err := fakeLogin(p, "p1", "pw"); err != nil {
			return err
		}
		for _, extra := range []string{"", ping} {
			req, err := fakeQuery(p, 2390, extra)
			if err != nil {
				return err
			}
			reqs = append(reqs, req)
		}
		_, err := p.expect("</stream:stream>")
		p.send("</stream:stream>") // the client may have closed already
		return err
	})

	c, err := dialXMPP(context.Background(), addr, "localhost", "p1", "pw")
	if err != nil {
		t.Fatalf("dialXMPP: %v", err)
	}
	if c.jid != fakeFull || c.bare != fakeBare {
		t.Errorf("bound jid = %q (bare %q), want %q", c.jid, c.bare, fakeFull)
	}
	if n, err := c.mamQuery("g1@localhost", 50); n != 50 || err != nil {
		t.Errorf("mamQuery(max 50) = %d, %v; want 50", n, err)
	}
	if n, err := c.mamQuery("g1@localhost", 3); n != 3 || err != nil {
		t.Errorf("mamQuery(max 3) = %d, %v; want 3", n, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	sent, err := wait()
	if err != nil {
		t.Fatalf("fake server: %v\nclient sent: %s", err, sent)
	}
	if strings.Contains(sent, "<presence") {
		t.Errorf("the client sent presence: %s", sent)
	}
	if len(reqs) != 2 {
		t.Fatalf("fake server saw %d queries, want 2", len(reqs))
	}
	var ids []string
	for i, req := range reqs {
		id, qid := reID.FindStringSubmatch(req)[1], reQueryID.FindStringSubmatch(req)[1]
		if id != qid {
			t.Errorf("query %d: id %q, queryid %q; want them equal", i, id, qid)
		}
		ids = append(ids, id)
		if w := reWith.FindStringSubmatch(req)[1]; w != "g1@localhost" {
			t.Errorf("query %d: with = %q", i, w)
		}
		if !strings.Contains(req, "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>") {
			t.Errorf("query %d has no MAM FORM_TYPE: %s", i, req)
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("both queries used id %q", ids[0])
	}
	if m := reMax.FindStringSubmatch(reqs[0]); m[1] != "50" {
		t.Errorf("first query max = %s, want 50", m[1])
	}
	if want := `<iq to='localhost' type='result' id='ping-7'/>`; !strings.Contains(sent, want) {
		t.Errorf("the client did not answer the ping with %s; sent: %s", want, sent)
	}
	if !strings.HasSuffix(sent, "</stream:stream>") {
		t.Errorf("Close did not end the stream; sent ends %q", sent[max(0, len(sent)-40):])
	}
}

func TestXMPPLoginFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(p *fakePeer) error
		want   string
	}{
		{"sasl failure", func(p *fakePeer) error {
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			if err := p.send(ejStreamHeader, ejSASLFeatures); err != nil {
				return err
			}
			if _, err := p.expect("</auth>"); err != nil {
				return err
			}
			return p.send(ejFailure)
		}, "not-authorized: Invalid username or password"},
		{"stream error", func(p *fakePeer) error {
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			return p.send(ejStreamHeader, `<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		}, "stream error: host-unknown"},
		{"no PLAIN", func(p *fakePeer) error {
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			return p.send(ejStreamHeader, `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>`)
		}, "no SASL PLAIN offered (server wants STARTTLS first)"},
		{"closed after auth", func(p *fakePeer) error {
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			if err := p.send(ejStreamHeader, ejSASLFeatures); err != nil {
				return err
			}
			_, err := p.expect("</auth>")
			return err // and close
		}, "EOF"},
		{"bind error", func(p *fakePeer) error {
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			if err := p.send(ejStreamHeader, ejSASLFeatures, ejSuccess); err != nil {
				return err
			}
			if _, err := p.expect("version='1.0'>"); err != nil {
				return err
			}
			if err := p.send(ejStreamHeader, ejBindFeatures); err != nil {
				return err
			}
			if _, err := p.expect("</iq>"); err != nil {
				return err
			}
			return p.send(`<iq type='error' id='bind'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
		}, "bind: server error: resource-constraint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, wait := startFake(t, tc.script)
			c, err := dialXMPP(context.Background(), addr, "localhost", "p1", "wrong")
			if err == nil {
				c.Close()
				t.Fatal("dialXMPP succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("dialXMPP error = %v, want it to mention %q", err, tc.want)
			}
			if _, err := wait(); err != nil {
				t.Errorf("fake server: %v", err)
			}
		})
	}
}

func TestXMPPDialCancelled(t *testing.T) {
	addr, wait := startFake(t, func(p *fakePeer) error {
		_, err := p.expect("version='1.0'>") // and never answer
		p.expect("never")                    // until the client goes away
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err := dialXMPP(ctx, addr, "localhost", "p1", "pw")
	if err == nil {
		c.Close()
		t.Fatal("dialXMPP succeeded against a silent server")
	}
	if d := time.Since(start); d > xmppTimeout/3 || !errors.Is(err, context.DeadlineExceeded) { // well before the 30 s bound of the dial itself
		t.Errorf("dialXMPP returned %v after %v; want the context's deadline, promptly", err, d)
	}
	if _, err := wait(); err != nil {
		t.Errorf("fake server: %v", err)
	}
}

func TestXMPPQueryError(t *testing.T) {
	addr, wait := startFake(t, func(p *fakePeer) error {
		if err := fakeLogin(p, "p1", "pw"); err != nil {
			return err
		}
		req, err := p.expect("</iq>")
		if err != nil {
			return err
		}
		id := reID.FindStringSubmatch(req)
		if id == nil {
			return fmt.Errorf("not a query: %q", req)
		}
		if err := p.send(fmt.Sprintf(ejQueryError, fakeFull, fakeBare, id[1])); err != nil {
			return err
		}
		if _, err := fakeQuery(p, 7, ""); err != nil { // the stream is still usable
			return err
		}
		// A third query that the server cuts short.
		req, err = p.expect("</iq>")
		if err != nil {
			return err
		}
		return p.send(ejMessage(reQueryID.FindStringSubmatch(req)[1], 0, ejBody), ejMessage(reQueryID.FindStringSubmatch(req)[1], 1, ejBody)[:100])
	})
	c, err := dialXMPP(context.Background(), addr, "localhost", "p1", "pw")
	if err != nil {
		t.Fatalf("dialXMPP: %v", err)
	}
	defer c.Close()
	n, err := c.mamQuery("@@@", 50)
	if err == nil || !strings.Contains(err.Error(), "bad-request: Bad value of field 'with'") {
		t.Errorf("mamQuery answered with an error iq = %d, %v; want the bad-request error", n, err)
	}
	if n, err := c.mamQuery("g1@localhost", 50); n != 7 || err != nil {
		t.Errorf("mamQuery after the error = %d, %v; want 7", n, err)
	}
	n, err = c.mamQuery("g1@localhost", 50)
	if err == nil || n != 1 {
		t.Errorf("mamQuery cut short by the server = %d, %v; want 1 and an error", n, err)
	}
	if _, err := c.mamQuery("g1@localhost", 50); err == nil {
		t.Error("mamQuery on a broken stream succeeded")
	}
	if _, err := wait(); err != nil {
		t.Errorf("fake server: %v", err)
	}
}

// chunkConn is a net.Conn whose reads return at most size bytes of in, then EOF.
type chunkConn struct {
	net.Conn // nil: only the methods below are used
	in       []byte
	size     int
	out      bytes.Buffer
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.size)], c.in)
	c.in = c.in[n:]
	return n, nil
}
func (c *chunkConn) Write(b []byte) (int, error)        { return c.out.Write(b) }
func (c *chunkConn) SetDeadline(time.Time) error        { return nil }
func (c *chunkConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *chunkConn) Close() error                       { return nil }

// TestXMPPQueryStream counts the results of one query over a response cut into reads of every
// small size, with stanzas that a naive byte count would get wrong.
func TestXMPPQueryStream(t *testing.T) {
	big := strings.Repeat("x", 100_000) // more than the initial buffer
	resp := strings.Join([]string{
		// A late result and the end of an earlier query (q0): not this query's.
		ejMessage("q0", 0, ejBody),
		fmt.Sprintf(ejFin, fakeFull, fakeBare, "q0"),
		"\n",
		ejMessage("q1", 1, ejBody),
		// A chat message quoting a result and the end of the query in its text, and one from
		// another user that pretends to be a result.
		`<message to='` + fakeFull + `' from='g1@localhost/phone' type='chat' id='a&apos;>b'><body>&lt;result xmlns='urn:xmpp:mam:2' queryid='q1'/&gt; &lt;iq type='result' id='q1'/&gt;</body></message>`,
		fmt.Sprintf(ejResult, fakeFull, "g1@localhost", "q1", 5, "g1@localhost", ejBody),
		// A result of another namespace.
		`<message to='` + fakeFull + `' from='` + fakeBare + `'><result queryid='q1' xmlns='urn:xmpp:mam:1' id='1'/></message>`,
		// A ping from the server, to be answered.
		`<iq from='localhost' type='get' id='p"1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		ejMessage("q1", 2, big),
		// Double quotes, other attribute order, an attribute value with '>' and '/>', whitespace.
		"<message from=\"" + fakeBare + "\" to=\"" + fakeFull + "\">\n <result xmlns=\"urn:xmpp:mam:2\" queryid=\"q1\" id=\"1/>2>\"><forwarded xmlns='urn:xmpp:forward:0'><message id='x/>' xmlns='jabber:client'><body>&lt;/message&gt;</body></message></forwarded></result></message>",
		ejMessage("q1", 3, ""),
		// An iq with the query's id from another sender does not end it.
		`<iq from='g1@localhost/phone' type='result' id='q1'/>`,
		fmt.Sprintf(ejFin, fakeFull, fakeBare, "q1"),
		ejMessage("q2", 0, ejBody)[:50], // the start of what follows stays buffered
	}, "")
	const want = 4
	for _, size := range []int{1, 2, 3, 5, 7, 11, 13, 64, 100, 997, 4096, 1 << 20} {
		cc := &chunkConn{in: []byte(resp), size: size}
		c := &xmppConn{conn: cc, domain: "localhost", jid: fakeFull, bare: fakeBare, buf: make([]byte, 32<<10)}
		n, err := c.mamQuery("g1@localhost", 50)
		if n != want || err != nil {
			t.Errorf("reads of %d bytes: mamQuery = %d, %v; want %d", size, n, err, want)
			continue
		}
		if !strings.Contains(cc.out.String(), `<iq to='localhost' type='result' id='p"1'/>`) {
			t.Errorf("reads of %d bytes: ping not answered; sent %s", size, cc.out.String())
		}
		if rest := string(c.buf[c.r:c.w]) + string(cc.in); rest != ejMessage("q2", 0, ejBody)[:50] {
			t.Errorf("reads of %d bytes: %q left after the query, want the start of the next stanza", size, rest)
		}
	}
}

func TestXMPPSendAcked(t *testing.T) {
	// Prosody 0.12's answer to a ping, verbatim but for the resource: no from.
	pong := func(id string) string { return `<iq type='result' to='` + fakeFull + `' id='` + id + `'/>` }
	serverPing := `<iq from='localhost' to='` + fakeFull + `' type='get' id='ping-3'><ping xmlns='urn:xmpp:ping'/></iq>`
	bounce := `<message type='error' to='` + fakeFull + `' from='g1@localhost' id='m2'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`
	addr, wait := startFake(t, func(p *fakePeer) error {
		if err := fakeLogin(p, "p1", "pw"); err != nil {
			return err
		}
		want := "<message type='chat' to='g1@localhost' id='m1'><body>Fish &amp; chips</body></message>" +
			"<iq type='get' id='a1'><ping xmlns='urn:xmpp:ping'/></iq>"
		if got, err := p.expect("</iq>"); err != nil || got != want {
			return fmt.Errorf("first send = %q, %v; want %q", got, err, want)
		}
		// A ping of the server's own before the answer: the client answers it and waits on.
		if err := p.send(serverPing, pong("a1")); err != nil {
			return err
		}
		if got, err := p.expect("id='ping-3'/>"); err != nil || got != `<iq to='localhost' type='result' id='ping-3'/>` {
			return fmt.Errorf("answer to the server's ping = %q, %v", got, err)
		}
		if _, err := p.expect("</iq>"); err != nil { // the second send: bounced, then answered
			return err
		}
		if err := p.send(bounce, pong("a2")); err != nil {
			return err
		}
		if _, err := p.expect("</iq>"); err != nil { // the third: the ping itself fails
			return err
		}
		return p.send(`<iq type='error' to='` + fakeFull + `' id='a3'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	})
	c, err := dialXMPP(context.Background(), addr, "localhost", "p1", "pw")
	if err != nil {
		t.Fatalf("dialXMPP: %v", err)
	}
	defer c.Close()
	if err := c.sendAcked("g1@localhost", "Fish & chips"); err != nil {
		t.Errorf("sendAcked answered = %v; want nil", err)
	}
	if err := c.sendAcked("g1@localhost", "hello"); err == nil || !strings.Contains(err.Error(), "bounced: service-unavailable") {
		t.Errorf("sendAcked bounced = %v; want the bounce", err)
	}
	if err := c.sendAcked("g1@localhost", "hello"); err == nil || !strings.Contains(err.Error(), "ping after the message") {
		t.Errorf("sendAcked with a failed ping = %v; want an error", err)
	}
	if _, err := wait(); err != nil {
		t.Errorf("fake server: %v", err)
	}
}
