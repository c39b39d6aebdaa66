package main

// A minimal XMPP client for comparing with ejabberd and Prosody: log in (SASL PLAIN on a plain
// TCP stream, resource binding, no initial presence), run MAM (XEP-0313, urn:xmpp:mam:2) archive
// queries, and send chat messages acknowledged by a ping.
//
// It does not decode stanzas with encoding/xml. The stream is split into top-level elements by a
// small scanner that follows tags (quote-aware) and nesting depth; that is exact for what an
// XMPP server may send (no comments, processing instructions or CDATA after the stream header,
// '<' escaped in text). Only the start tags of interest are then looked at: the stanza's own and
// its first child. What ejabberd 23.01 sends for a query (single quotes, attributes in this order):
//
//	<message to='p1@localhost/r' from='p1@localhost'><result id='1795…' queryid='q1' xmlns='urn:xmpp:mam:2'><forwarded …>…</forwarded></result></message>
//	…
//	<iq xml:lang='en' to='p1@localhost/r' from='p1@localhost' type='result' id='q1'><fin complete='false' xmlns='urn:xmpp:mam:2'><set …>…</set></fin></iq>

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// xmppTimeout bounds every xmppConn call (each I/O deadline is at most this far away).
const xmppTimeout = 30 * time.Second

// xmppMaxBuffer bounds the buffered size of one top-level element (ejabberd's default
// max_stanza_size is 256 KiB; a MAM result wraps one such stanza).
const xmppMaxBuffer = 4 << 20

const (
	xmppNSSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	xmppNSBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	xmppNSSession = "urn:ietf:params:xml:ns:xmpp-session"
	xmppNSMAM     = "urn:xmpp:mam:2"
	xmppNSRSM     = "http://jabber.org/protocol/rsm"
	xmppNSPing    = "urn:xmpp:ping"
)

// errXMPPStreamClosed is returned once the server has closed the stream.
var errXMPPStreamClosed = errors.New("xmpp: stream closed by the server")

// xmppConn is one logged-in client stream. It is not safe for concurrent use.
type xmppConn struct {
	conn   net.Conn
	domain string
	jid    string // full JID assigned at bind
	bare   string // bare JID (user@domain)
	seq    uint64 // for ids and queryids
	out    []byte // reusable output buffer

	// Input: buf[r:w] is unconsumed data. The scanner state (pos, depth) describes
	// buf[r:pos], the part of the current element already scanned.
	buf   []byte
	r, w  int
	pos   int
	depth int

	err error // sticky: set by an I/O or protocol error; the stream is then unusable
}

// dialXMPP connects to addr (host:port, plain TCP, no TLS), opens a stream to domain,
// authenticates with SASL PLAIN as user/password, restarts the stream, binds a resource chosen
// by the server and returns the connection. It sends no initial presence, so the server pushes
// no offline messages or presence.
func dialXMPP(ctx context.Context, addr, domain, user, password string) (*xmppConn, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, xmppTimeout)
	defer cancel()
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xmpp: dial %s: %w", addr, err)
	}
	c := &xmppConn{conn: nc, domain: domain, buf: make([]byte, 32<<10)}
	// dctx bounds the login (through AfterFunc below, so that its expiry is reported as such);
	// the socket's own deadline is only a backstop.
	deadline, _ := dctx.Deadline()
	if err := nc.SetDeadline(deadline.Add(time.Second)); err != nil {
		nc.Close()
		return nil, err
	}
	// Cancelling ctx interrupts any blocked read or write.
	stop := context.AfterFunc(dctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = c.login(user, password)
	if stopped := stop(); (err != nil || !stopped) && dctx.Err() != nil {
		// Cancelled or timed out.
		if err == nil {
			err = dctx.Err()
		} else {
			err = fmt.Errorf("%w: %w", dctx.Err(), err)
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("xmpp: log in %s@%s: %w", user, domain, err)
	}
	return c, nil
}

func (c *xmppConn) login(user, password string) error {
	feats, err := c.openStream()
	if err != nil {
		return err
	}
	if mechs, ok := xmlChild(feats, "mechanisms"); !ok || !bytes.Contains(mechs, []byte("<mechanism>PLAIN</mechanism>")) {
		if _, tls := xmlChild(feats, "starttls"); tls {
			return fmt.Errorf("no SASL PLAIN offered (server wants STARTTLS first): %s", feats)
		}
		return fmt.Errorf("no SASL PLAIN offered: %s", feats)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := c.send("<auth xmlns='" + xmppNSSASL + "' mechanism='PLAIN'>" + cred + "</auth>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return err
	}
	switch name := string(xmlTagName(el)); name {
	case "success":
	case "failure":
		return fmt.Errorf("SASL PLAIN refused: %s", xmppErrorText(el))
	default:
		return fmt.Errorf("unexpected answer to SASL auth: %.300s", el)
	}
	c.r, c.w, c.pos, c.depth = 0, 0, 0, 0 // the stream restarts; nothing of the old one remains
	if feats, err = c.openStream(); err != nil {
		return err
	}
	if _, ok := xmlChild(feats, "bind"); !ok {
		return fmt.Errorf("no resource binding offered: %s", feats)
	}
	res, err := c.iq("<iq type='set' id='bind'><bind xmlns='"+xmppNSBind+"'/></iq>", "bind")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	jid, ok := xmlChild(res, "jid")
	if !ok {
		return fmt.Errorf("bind result without a jid: %.300s", res)
	}
	c.jid = xmlUnescape(xmlText(jid))
	c.bare, _, _ = strings.Cut(c.jid, "/")
	// RFC 6121 sessions: only if the server still requires one (ejabberd marks it optional).
	if sess, ok := xmlChild(feats, "session"); ok && !bytes.Contains(sess, []byte("<optional")) {
		if _, err := c.iq("<iq type='set' id='sess'><session xmlns='"+xmppNSSession+"'/></iq>", "sess"); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	return nil
}

// openStream sends a stream header, reads the server's and returns its <stream:features>.
func (c *xmppConn) openStream() ([]byte, error) {
	if err := c.send("<?xml version='1.0'?><stream:stream to='" + xmlEscape(c.domain) +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"); err != nil {
		return nil, err
	}
	el, err := c.next()
	if err != nil {
		return nil, err
	}
	if string(xmlTagName(el)) != "stream:stream" {
		return nil, fmt.Errorf("expected a stream header, got %.300s", el)
	}
	if el, err = c.next(); err != nil {
		return nil, err
	}
	if string(xmlTagName(el)) != "stream:features" {
		return nil, fmt.Errorf("expected stream features, got %.300s", el)
	}
	return el, nil
}

// iq sends an iq stanza and returns the iq result with the given id.
func (c *xmppConn) iq(stanza, id string) ([]byte, error) {
	if err := c.send(stanza); err != nil {
		return nil, err
	}
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if string(xmlTagName(el)) != "iq" || !c.fromServer(el) {
			continue
		}
		start := xmlStartTag(el)
		if v, _ := xmlAttr(start, "id"); string(v) != id {
			c.answer(el)
			continue
		}
		if t, _ := xmlAttr(start, "type"); string(t) != "result" {
			return nil, fmt.Errorf("server error: %s", xmppErrorText(el))
		}
		return el, nil
	}
}

// mamQuery asks for the newest max messages exchanged with the bare JID with (RSM <max/> and
// <before/>), reads the <message> stanzas carrying a <result xmlns='urn:xmpp:mam:2'> with this
// query's queryid until the iq that ends the query, and returns how many results arrived. An iq
// of type error for the query is an error; the stream stays usable after it.
func (c *xmppConn) mamQuery(with string, max int) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.conn.SetDeadline(time.Now().Add(xmppTimeout)); err != nil {
		return 0, c.fail(err)
	}
	c.seq++
	var idb [24]byte
	id := strconv.AppendUint(append(idb[:0], 'q'), c.seq, 10) // id and queryid
	o := append(c.out[:0], "<iq type='set' id='"...)
	o = append(o, id...)
	o = append(o, "'><query xmlns='"+xmppNSMAM+"' queryid='"...)
	o = append(o, id...)
	o = append(o, "'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>"+xmppNSMAM+
		"</value></field><field var='with'><value>"...)
	o = append(o, xmlEscape(with)...)
	o = append(o, "</value></field></x><set xmlns='"+xmppNSRSM+"'><max>"...)
	o = strconv.AppendInt(o, int64(max), 10)
	o = append(o, "</max><before/></set></query></iq>"...)
	c.out = o
	if _, err := c.conn.Write(o); err != nil {
		return 0, c.fail(err)
	}
	n := 0
	for {
		el, err := c.next()
		if err != nil {
			return n, err
		}
		switch name := xmlTagName(el); {
		case string(name) == "message":
			if !c.fromServer(el) {
				continue
			}
			start := xmlStartTag(el)
			res := xmlStartTag(el[len(start):])
			if string(xmlTagName(res)) != "result" {
				continue
			}
			if ns, _ := xmlAttr(res, "xmlns"); string(ns) != xmppNSMAM {
				continue
			}
			if q, _ := xmlAttr(res, "queryid"); bytes.Equal(q, id) {
				n++
			}
		case string(name) == "iq":
			if !c.fromServer(el) {
				continue
			}
			start := xmlStartTag(el)
			if v, _ := xmlAttr(start, "id"); !bytes.Equal(v, id) {
				c.answer(el)
				continue
			}
			if t, _ := xmlAttr(start, "type"); string(t) != "result" {
				return n, fmt.Errorf("xmpp: MAM query with %s: server error: %s", with, xmppErrorText(el))
			}
			return n, nil
		}
	}
}

// sendAcked sends a chat message to the bare JID to, followed by a ping to the server, and
// returns once the ping is answered. A server handles one session's stanzas in order, so the
// answer comes after the message was routed and stored (Prosody, for one, runs each session's
// stanzas one after another, storage included): the ping is the message's acknowledgment. A
// message bounced with an error before the answer is an error.
func (c *xmppConn) sendAcked(to, body string) error {
	if c.err != nil {
		return c.err
	}
	if err := c.conn.SetDeadline(time.Now().Add(xmppTimeout)); err != nil {
		return c.fail(err)
	}
	c.seq++
	var idb [24]byte
	id := strconv.AppendUint(append(idb[:0], 'm'), c.seq, 10) // the message's; the ping's is "a" + id[1:]
	o := append(c.out[:0], "<message type='chat' to='"...)
	o = append(o, xmlEscape(to)...)
	o = append(o, "' id='"...)
	o = append(o, id...)
	o = append(o, "'><body>"...)
	o = append(o, xmlEscape(body)...)
	o = append(o, "</body></message><iq type='get' id='a"...)
	o = append(o, id[1:]...)
	o = append(o, "'><ping xmlns='"+xmppNSPing+"'/></iq>"...)
	c.out = o
	if _, err := c.conn.Write(o); err != nil {
		return c.fail(err)
	}
	var bounced error
	for {
		el, err := c.next()
		if err != nil {
			return err
		}
		start := xmlStartTag(el)
		v, _ := xmlAttr(start, "id")
		switch string(xmlTagName(el)) {
		case "message":
			if t, _ := xmlAttr(start, "type"); string(t) == "error" && bytes.Equal(v, id) {
				bounced = fmt.Errorf("xmpp: message to %s bounced: %s", to, xmppErrorText(el))
			}
		case "iq":
			if !c.fromServer(el) {
				continue
			}
			if len(v) == 0 || v[0] != 'a' || !bytes.Equal(v[1:], id[1:]) {
				c.answer(el)
				continue
			}
			if t, _ := xmlAttr(start, "type"); string(t) != "result" {
				return fmt.Errorf("xmpp: ping after the message to %s: server error: %s", to, xmppErrorText(el))
			}
			return bounced
		}
	}
}

// Close ends the stream and closes the connection.
func (c *xmppConn) Close() error {
	if c.err == nil {
		c.conn.SetDeadline(time.Now().Add(time.Second))
		c.conn.Write([]byte("</stream:stream>"))
		c.err = net.ErrClosed
	}
	return c.conn.Close()
}

// fromServer reports whether a stanza comes from the server on behalf of the account (no from,
// the bare or full JID, or the domain), as MAM results and iq answers must.
func (c *xmppConn) fromServer(el []byte) bool {
	f, ok := xmlAttr(xmlStartTag(el), "from")
	if !ok {
		return true
	}
	if bytes.IndexByte(f, '&') < 0 { // the usual case; compared without allocating
		return string(f) == c.bare || string(f) == c.jid || string(f) == c.domain
	}
	s := xmlUnescape(f)
	return s == c.bare || s == c.jid || s == c.domain
}

// answer replies to an iq request (get or set) from the server, so that a server that pings its
// clients does not drop this one: a ping gets a result, anything else service-unavailable.
func (c *xmppConn) answer(el []byte) {
	start := xmlStartTag(el)
	t, _ := xmlAttr(start, "type")
	if string(t) != "get" && string(t) != "set" {
		return
	}
	id, _ := xmlAttr(start, "id")
	reply := "<iq type='result' id='" + string(id) + "'/>"
	if ch := xmlStartTag(el[len(start):]); string(xmlTagName(ch)) != "ping" || !xmlHasAttr(ch, "xmlns", xmppNSPing) {
		reply = "<iq type='error' id='" + string(id) + "'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
	}
	if f, ok := xmlAttr(start, "from"); ok {
		reply = strings.Replace(reply, "<iq ", "<iq to='"+string(f)+"' ", 1)
	}
	c.send(reply) // an error is sticky and surfaces at the next read
}

func (c *xmppConn) send(s string) error {
	if c.err != nil {
		return c.err
	}
	c.out = append(c.out[:0], s...)
	if _, err := c.conn.Write(c.out); err != nil {
		return c.fail(err)
	}
	return nil
}

func (c *xmppConn) fail(err error) error {
	if c.err == nil {
		c.err = err
	}
	return c.err
}

// next returns the next top-level element of the stream: a complete stanza or stream-level
// element, or the start tag of a stream header (<stream:stream …>). The slice is valid until the
// following call. A <stream:error> or the end of the stream is an error.
func (c *xmppConn) next() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	for {
		el, err := c.scan()
		if err != nil {
			return nil, c.fail(err)
		}
		if el != nil {
			if string(xmlTagName(el)) == "stream:error" {
				return nil, c.fail(fmt.Errorf("xmpp: stream error: %s", xmppErrorText(el)))
			}
			return el, nil
		}
		// Need more input: drop what is consumed, grow if full, read.
		if c.r > 0 {
			copy(c.buf, c.buf[c.r:c.w])
			c.w -= c.r
			c.pos -= c.r
			c.r = 0
		}
		if c.w == len(c.buf) {
			if len(c.buf) >= xmppMaxBuffer {
				return nil, c.fail(fmt.Errorf("xmpp: element larger than %d bytes", xmppMaxBuffer))
			}
			nb := make([]byte, 2*len(c.buf))
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
		n, err := c.conn.Read(c.buf[c.w:])
		c.w += n
		if err != nil && n == 0 {
			return nil, c.fail(fmt.Errorf("xmpp: read: %w", err))
		}
	}
}

// scan continues scanning buf from pos, tag by tag. It returns the next complete top-level
// element (and consumes it), or nil if more input is needed.
func (c *xmppConn) scan() ([]byte, error) {
	b := c.buf[:c.w]
	for {
		lt := bytes.IndexByte(b[c.pos:], '<')
		if lt < 0 {
			if c.depth == 0 { // whitespace between elements: drop it
				c.r, c.pos = c.w, c.w
			} else {
				c.pos = c.w
			}
			return nil, nil
		}
		i := c.pos + lt
		if c.depth == 0 {
			c.r = i // an element starts here
		}
		if i+1 >= len(b) {
			c.pos = i
			return nil, nil
		}
		switch b[i+1] {
		case '?': // XML declaration, before the stream header only
			e := bytes.Index(b[i:], []byte("?>"))
			if e < 0 {
				c.pos = i
				return nil, nil
			}
			c.pos = i + e + 2
			c.r = c.pos
			continue
		case '!':
			return nil, fmt.Errorf("xmpp: comment, CDATA or DTD in the stream: %.40s", b[i:])
		}
		e := xmlTagEnd(b, i)
		if e < 0 {
			c.pos = i
			return nil, nil
		}
		c.pos = e
		switch {
		case b[i+1] == '/':
			c.depth--
			if c.depth < 0 {
				c.depth = 0
				return nil, errXMPPStreamClosed // </stream:stream>
			}
		case b[e-2] == '/': // empty element
		case c.depth == 0 && string(xmlTagName(b[i:e])) == "stream:stream":
			// The stream header is returned alone; its children are the top-level elements.
			c.r = e
			return b[i:e], nil
		default:
			c.depth++
		}
		if c.depth == 0 {
			el := b[c.r:e]
			c.r = e
			return el, nil
		}
	}
}

// xmlTagEnd returns the index just past the '>' closing the tag that starts at b[i] ('<'),
// skipping quoted attribute values, or -1 if b ends first.
func xmlTagEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '>':
			return j + 1
		case '\'', '"':
			k := bytes.IndexByte(b[j+1:], b[j])
			if k < 0 {
				return -1
			}
			j += 1 + k
		}
	}
	return -1
}

// xmlStartTag returns the start tag at the beginning of el (after leading whitespace), or nil.
func xmlStartTag(el []byte) []byte {
	i := 0
	for i < len(el) && el[i] != '<' {
		i++
	}
	if i == len(el) || i+1 < len(el) && el[i+1] == '/' {
		return nil
	}
	if e := xmlTagEnd(el, i); e > 0 {
		return el[:e] // keeps the leading whitespace so that len() can be used to skip it
	}
	return nil
}

// xmlTagName returns the name of the start tag at the beginning of el (after whitespace), as a
// slice of el (compare it as string(xmlTagName(el)) == "x", which does not allocate).
func xmlTagName(el []byte) []byte {
	el = bytes.TrimLeft(el, " \t\r\n")
	if len(el) < 2 || el[0] != '<' {
		return nil
	}
	j := 1
	for j < len(el) && !xmlIsSpace(el[j]) && el[j] != '>' && el[j] != '/' {
		j++
	}
	return el[1:j]
}

// xmlAttr returns the raw (still escaped) value of the attribute name in the start tag tag.
func xmlAttr(tag []byte, name string) ([]byte, bool) {
	tag = bytes.TrimLeft(tag, " \t\r\n")
	j := 1
	for j < len(tag) && !xmlIsSpace(tag[j]) && tag[j] != '>' && tag[j] != '/' {
		j++
	}
	for j < len(tag) {
		for j < len(tag) && xmlIsSpace(tag[j]) {
			j++
		}
		k := j
		for k < len(tag) && tag[k] != '=' && !xmlIsSpace(tag[k]) && tag[k] != '>' && tag[k] != '/' {
			k++
		}
		if k == j {
			return nil, false
		}
		n := tag[j:k]
		for k < len(tag) && (xmlIsSpace(tag[k]) || tag[k] == '=') {
			k++
		}
		if k >= len(tag) || tag[k] != '\'' && tag[k] != '"' {
			return nil, false
		}
		q := bytes.IndexByte(tag[k+1:], tag[k])
		if q < 0 {
			return nil, false
		}
		if string(n) == name {
			return tag[k+1 : k+1+q], true
		}
		j = k + 2 + q
	}
	return nil, false
}

func xmlHasAttr(tag []byte, name, value string) bool {
	v, ok := xmlAttr(tag, name)
	return ok && string(v) == value
}

func xmlIsSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// xmlChild returns the first element named name (no prefix match) inside el, from its start tag to
// the end of el; enough for looking at its start tag, its first child or its leading text.
func xmlChild(el []byte, name string) ([]byte, bool) {
	pat := "<" + name
	for i := 0; ; {
		k := bytes.Index(el[i:], []byte(pat))
		if k < 0 {
			return nil, false
		}
		i += k
		if e := i + len(pat); e < len(el) && (xmlIsSpace(el[e]) || el[e] == '>' || el[e] == '/') {
			return el[i:], true
		}
		i++
	}
}

// xmlText returns the character data right after the start tag at the beginning of el.
func xmlText(el []byte) []byte {
	s := xmlStartTag(el)
	rest := el[len(s):]
	if k := bytes.IndexByte(rest, '<'); k >= 0 {
		rest = rest[:k]
	}
	return rest
}

// xmppErrorText summarizes a <failure>, <stream:error>, or an iq or message of type error: the
// condition element and the <text>, if any.
func xmppErrorText(el []byte) string {
	body := el
	if name := string(xmlTagName(el)); name == "iq" || name == "message" {
		e, ok := xmlChild(el, "error")
		if !ok {
			return fmt.Sprintf("%.300s", el)
		}
		body = e
	}
	start := xmlStartTag(body)
	cond := string(xmlTagName(body[len(start):]))
	if t, ok := xmlChild(body[len(start):], "text"); ok {
		return cond + ": " + xmlUnescape(xmlText(t))
	}
	if cond == "" {
		return fmt.Sprintf("%.300s", el)
	}
	return cond
}

var (
	xmlEscaper   = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")
	xmlUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&apos;", "'", "&quot;", `"`)
)

func xmlEscape(s string) string {
	if strings.ContainsAny(s, "&<>'\"") {
		return xmlEscaper.Replace(s)
	}
	return s
}

func xmlUnescape(b []byte) string {
	if bytes.IndexByte(b, '&') < 0 {
		return string(b)
	}
	return xmlUnescaper.Replace(string(b))
}
