package httpapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/internal/messaging"
)

// bindBody reads the request body as one JSON object into dst, a pointer to a struct whose
// fields are usually json.RawMessage so that each can be checked by name afterwards. An empty
// body counts as {}. Errors: 415 for a non-JSON Content-Type (a missing one is accepted) or a
// Content-Encoding (a compressed body; identity is none), 413
// over the limit, and 400 invalid_request for anything but a JSON object in valid UTF-8; a
// field of the wrong JSON type is 400 invalid_parameter naming it.
func (s *Server) bindBody(c echo.Context, dst any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		if !jsonMediaType(ct) {
			return errMediaType
		}
	}
	if !identityEncoded(req.Header) {
		return errEncoding
	}
	if req.ContentLength > s.cfg.MaxBodyBytes {
		return errTooLarge
	}
	body, err := readAll(io.LimitReader(req.Body, s.cfg.MaxBodyBytes+1), req.ContentLength)
	// The body's arrival was not database work, refused or not: a refusal still checks the
	// caller's key (a revoked one answers 401), under the deadline it then has (found by review).
	restartDeadline(c)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return errTooLarge
		}
		return errBadJSON
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return errTooLarge
	}
	body = bytes.Trim(body, jsonSpace)
	if len(body) == 0 {
		return nil
	}
	if !utf8.Valid(body) {
		return errBadJSON
	}
	if body[0] != '{' {
		return errNotJSONObject
	}
	if !json.Valid(body) {
		return errBadJSON
	}
	return decodeObject(body, dst)
}

// decodeObject sets each field of the struct dst points to from the member of the JSON object
// body (valid JSON) whose name is the field's json name exactly; only the last counts if a name
// is given twice, whatever the earlier values were, and other members are ignored. encoding/json
// would also take a member whose name matches a field's only when case is ignored, where the
// contract's names are case-sensitive (§2): {"Content": ""} is an unknown field, not the
// content. json.RawMessage fields get the value as written, for their parsers to check (each
// reads strings with jsonString), others (and their UnmarshalJSON) decode it with encoding/json.
// A value of the latter that escapes half of a UTF-16 surrogate pair alone is 400
// invalid_parameter naming its field, as jsonString refuses it for the former.
func decodeObject(body []byte, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	fields := jsonFields(v.Type())
	var kept [16][]byte // on the stack for the bodies of up to 16 fields, all of the service's
	last := kept[:]     // each field's last value, as written; nil: not given
	if len(fields) > len(kept) {
		last = make([][]byte, len(fields))
	}
	err := eachMember(body, func(name, value []byte) error {
		for i, f := range fields {
			if string(name) == f.name {
				last[i] = value
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, f := range fields {
		value := last[i]
		if value == nil {
			continue
		}
		field := v.FieldByIndex(f.index)
		if f.raw {
			field.SetBytes(value)
			continue
		}
		if loneSurrogate(value) {
			return messaging.Invalid(f.name)
		}
		if u, ok := field.Addr().Interface().(json.Unmarshaler); ok {
			err = u.UnmarshalJSON(value) // as json.Unmarshal would, without checking value again
		} else {
			err = json.Unmarshal(value, field.Addr().Interface())
		}
		if err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return messaging.Invalid(f.name)
			}
			return errBadJSON
		}
	}
	return nil
}

// jsonField is a struct field as decodeObject fills it.
type jsonField struct {
	name  string // its json name
	index []int  // for reflect.Value.FieldByIndex
	raw   bool   // a json.RawMessage
}

var jsonFieldCache sync.Map // reflect.Type → []jsonField

// jsonFields returns the fields of struct type t that have a json name, those of embedded
// structs without one included, as encoding/json promotes them (an embedded struct with a json
// name is one field, as there).
func jsonFields(t reflect.Type) []jsonField {
	if fs, ok := jsonFieldCache.Load(t); ok {
		return fs.([]jsonField)
	}
	var fs []jsonField
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() || insideNamedStruct(t, f.Index) {
			continue
		}
		fs = append(fs, jsonField{name: name, index: f.Index, raw: f.Type == reflect.TypeFor[json.RawMessage]()})
	}
	jsonFieldCache.Store(t, fs)
	return fs
}

// insideNamedStruct reports whether the field at index is promoted from an embedded struct
// that has a json name of its own.
func insideNamedStruct(t reflect.Type, index []int) bool {
	for k := 1; k < len(index); k++ {
		if t.FieldByIndex(index[:k]).Tag.Get("json") != "" {
			return true
		}
	}
	return false
}

// jsonSpace is JSON's white space (RFC 8259 §2), all of it.
const jsonSpace = " \t\n\r"

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// eachMember calls f with the name (unescaped) and the value (as written) of each member of the
// JSON object body, in order, until f returns an error. body must be valid JSON: the walk
// relies on it, and json.Valid checks it first.
func eachMember(body []byte, f func(name, value []byte) error) error {
	i := skipSpace(body, 1) // after the '{'
	for i < len(body) && body[i] == '"' {
		end := stringEnd(body, i)
		name := body[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(body[i:end], &s); err != nil {
				return errBadJSON
			}
			name = []byte(s)
		}
		i = skipSpace(body, skipSpace(body, end)+1) // past the ':'
		vend := valueEnd(body, i)
		if err := f(name, body[i:vend]); err != nil {
			return err
		}
		i = skipSpace(body, vend)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return nil
}

// jsonString reads raw, a JSON value, as a string. It is false for any other JSON type, and for
// a string that escapes half of a UTF-16 surrogate pair alone: encoding/json would read that as
// U+FFFD and so store other text than was sent, where invalid UTF-8 bytes are refused.
func jsonString(raw []byte) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil || loneSurrogate(raw) {
		return "", false
	}
	return s, true
}

// loneSurrogate reports whether the JSON value b (valid JSON) holds a \u escape of half of a
// UTF-16 surrogate pair that is not paired with the other half (RFC 8259 §8.2), such as \ud800.
func loneSurrogate(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return false
		}
		i += j
		if b[i+1] != 'u' { // an escape of one character: \\, \", \n, …
			i += 2
			continue
		}
		r := hex4(b[i+2 : i+6])
		i += 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF: // a low half first
			return true
		case r >= 0xD800 && r <= 0xDBFF: // a high half, which the low one must follow
			if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
				return true
			}
			if lo := hex4(b[i+2 : i+6]); lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
}

// hex4 reads the four hexadecimal digits of a \u escape (valid JSON).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// stringEnd returns the index just after the JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		j += bytes.IndexByte(b[j:], '"')
		escapes := 0
		for b[j-1-escapes] == '\\' {
			escapes++
		}
		if escapes%2 == 0 {
			return j + 1
		}
		j++
	}
}

// valueEnd returns the index just after the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i // a number, true, false or null
	for j < len(b) && !strings.ContainsRune(",}]"+jsonSpace, rune(b[j])) {
		j++
	}
	return j
}

// identityEncoded reports whether the body comes as it is: no Content-Encoding but identity.
func identityEncoded(h http.Header) bool {
	for _, v := range h.Values(echo.HeaderContentEncoding) {
		for _, coding := range strings.Split(v, ",") {
			if coding = strings.TrimSpace(coding); coding != "" && !strings.EqualFold(coding, "identity") {
				return false
			}
		}
	}
	return true
}

// jsonMediaType reports whether a Content-Type is JSON: application/json or a type/subtype whose
// subtype has the +json suffix (RFC 6839), with any parameters.
func jsonMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct) // lower case
	typ, sub, ok := strings.Cut(mt, "/")
	return err == nil && ok && typ != "" &&
		(mt == echo.MIMEApplicationJSON || len(sub) > len("+json") && strings.HasSuffix(sub, "+json"))
}

// readAll is io.ReadAll into a buffer sized by the request's Content-Length when it has one
// (already checked against the limit), so that a large body, an upload, is read into one
// allocation instead of a growing series of them.
func readAll(r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, 0, contentLength+1) // +1: room to see the end without growing
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func absent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// parseAccommodation reads a positive int64 given as a JSON integer or a string of digits.
func parseAccommodation(raw json.RawMessage, field string) (int64, error) {
	if absent(raw) || string(raw) == `""` {
		return 0, messaging.Missing(field)
	}
	text := string(raw)
	if raw[0] == '"' {
		var ok bool
		if text, ok = jsonString(raw); !ok {
			return 0, messaging.Invalid(field)
		}
	}
	if !allDigits(text) {
		return 0, messaging.Invalid(field)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n <= 0 {
		return 0, messaging.Invalid(field)
	}
	return n, nil
}

// parseReservation reads a reservation id given as a JSON integer or a string of 1 to 64
// characters from A-Za-z0-9._-; "" and null count as not given.
func parseReservation(raw json.RawMessage, field string) (string, error) {
	if absent(raw) || string(raw) == `""` {
		return "", nil
	}
	if raw[0] != '"' {
		if !allDigits(string(raw)) || len(raw) > 64 {
			return "", messaging.Invalid(field)
		}
		return string(raw), nil
	}
	id, ok := jsonString(raw)
	if !ok || !messaging.ValidReservationID(id) {
		return "", messaging.Invalid(field)
	}
	return id, nil
}

// parseUUID reads a UUID string; "" and null count as not given (uuid.Nil, false). The nil UUID
// written out is given: it is well-formed, and names nothing, as the service never issues it.
func parseUUID(raw json.RawMessage, field string) (id uuid.UUID, given bool, err error) {
	if absent(raw) || string(raw) == `""` {
		return uuid.Nil, false, nil
	}
	var text []byte
	if n := len(raw); n == 38 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		text = raw[1 : n-1] // a plain string: its bytes are its text (confirm reads 1,000 of these)
	} else {
		s, ok := jsonString(raw)
		if !ok {
			return uuid.Nil, false, messaging.Invalid(field)
		}
		text = []byte(s)
	}
	if id, ok := canonicalUUID(text); ok {
		return id, true, nil
	}
	return uuid.Nil, false, messaging.Invalid(field)
}

// canonicalUUID parses a UUID in the 36-character form the API writes, in either case, and no
// other (uuid.ParseBytes alone also takes 32 hex digits, braces and urn:uuid:).
func canonicalUUID(text []byte) (uuid.UUID, bool) {
	id, err := uuid.ParseBytes(text)
	return id, err == nil && len(text) == 36
}

// parseConversation reads a ref's conversation id, which must be given when required; given as
// the nil UUID, it names no conversation (messaging.ConversationRef.NilConversation).
func parseConversation(raw json.RawMessage, required bool, ref *messaging.ConversationRef) error {
	id, given, err := parseUUID(raw, "conversation")
	if err == nil && required && !given {
		err = messaging.Missing("conversation")
	}
	ref.ConversationID, ref.NilConversation = id, given && id == uuid.Nil
	return err
}

// parseString reads a JSON string; null or absent is "".
func parseString(raw json.RawMessage, field string) (string, error) {
	if absent(raw) {
		return "", nil
	}
	text, ok := jsonString(raw)
	if !ok {
		return "", messaging.Invalid(field)
	}
	return text, nil
}

// parseUUIDs reads an array of UUID strings of at most max elements, naming a bad element by
// its position. Absent, null or "" is nil.
func parseUUIDs(raw json.RawMessage, field string, max int) ([]uuid.UUID, error) {
	if absent(raw) || string(raw) == `""` {
		return nil, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, messaging.Invalid(field)
	}
	if len(elems) > max {
		return nil, messaging.Invalid(field)
	}
	var f messaging.ValidationErrors
	ids := make([]uuid.UUID, len(elems))
	for i, e := range elems {
		id, given, err := parseUUID(e, field)
		if err != nil || !given {
			f.Add(messaging.Invalid(messaging.Indexed(field, i)))
		}
		ids[i] = id
	}
	return ids, f.Err()
}

// spellings maps each id of raw, a list that parseUUIDs read, to how the request first wrote
// it, so that an answer can list "the ids of the request" (§5.3) as they were written: UUIDs are
// read in either case (RFC 9562), and the service writes them in lower case. It is nil when
// every id is written as the service writes it, as clients that echo the service's ids do.
func spellings(raw json.RawMessage) map[uuid.UUID]string {
	if inner := bytes.TrimSpace(raw); len(inner) >= 2 && allBit5(inner[1:len(inner)-1]) {
		return nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) != nil {
		return nil
	}
	out := make(map[uuid.UUID]string, len(texts))
	for _, t := range texts {
		if id, err := uuid.Parse(t); err == nil {
			if _, seen := out[id]; !seen {
				out[id] = t
			}
		}
	}
	return out
}

// allBit5 reports whether every byte of b has bit 0x20 set, as lower-case letters, digits, '-',
// '"', ',' and ' ' do, and upper-case letters, '\\' and control characters do not: for the
// inside of a list of UUIDs, that no id is in upper case or escaped. Eight bytes at a time (a
// confirm carries up to 1,000 ids; bytes.ContainsAny took 5 µs for 100).
func allBit5(b []byte) bool {
	const bit5 = 0x2020202020202020
	for ; len(b) >= 8; b = b[8:] {
		if binary.LittleEndian.Uint64(b)&bit5 != bit5 {
			return false
		}
	}
	for _, c := range b {
		if c&0x20 == 0 {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
