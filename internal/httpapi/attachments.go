package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// base64Field is file_content. It keeps its own copy of the JSON string's bytes (unescaping them
// only when the string has escapes, which base64 never needs), so that the file is decoded once,
// in chunks while it is checked, and never held decoded.
type base64Field struct {
	present  bool // given and not null
	isString bool
	text     []byte
}

func (f *base64Field) UnmarshalJSON(data []byte) error {
	*f = base64Field{present: string(data) != "null"}
	if len(data) < 2 || data[0] != '"' {
		return nil
	}
	f.isString = true
	inner := data[1 : len(data)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		f.text = bytes.Clone(inner)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	f.text = []byte(s)
	return nil
}

type uploadBody struct {
	Accommodation json.RawMessage `json:"accommodation"`
	Conversation  json.RawMessage `json:"conversation"`
	FileName      json.RawMessage `json:"file_name"`
	FileType      json.RawMessage `json:"file_type"`
	FileSize      json.RawMessage `json:"file_size"`
	FileContent   base64Field     `json:"file_content"`
}

// upload answers both versions alike: data.attachment.
func (s *Server) upload(c echo.Context) error {
	var b uploadBody
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	var f messaging.ValidationErrors
	var in messaging.UploadInput
	var err error
	in.Ref.AccommodationID, err = parseAccommodation(b.Accommodation, "accommodation")
	f.Add(err)
	f.Add(parseConversation(b.Conversation, true, &in.Ref))
	in.FileName, err = requiredString(b.FileName, "file_name")
	f.Add(err)
	in.FileType, err = requiredString(b.FileType, "file_type")
	f.Add(err)
	in.FileSize, err = parseFileSize(b.FileSize)
	f.Add(err)
	switch fc := b.FileContent; {
	case !fc.present || (fc.isString && len(fc.text) == 0):
		f.Add(messaging.Missing("file_content"))
	case !fc.isString:
		f.Add(messaging.Invalid("file_content"))
	default:
		content, ok := scanBase64(fc.text, s.svc.AttachmentPolicy().MaxBytes)
		if !ok {
			f.Add(messaging.Invalid("file_content"))
		}
		in.Content = content
	}
	if err := f.Err(); err != nil {
		return err
	}
	id, err := s.svc.Upload(c.Request().Context(), callerOf(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.UploadData]{RequestID: requestID(c), Data: api.UploadData{Attachment: id.String()}})
}

// scanBase64 decodes standard (padded) base64 in chunks, never holding the decoded file, and
// learns its length, SHA-256 and the media type its first bytes show (http.DetectContentType).
// It stops once it has decoded more than max bytes: a longer file shows as Size > max. ok is
// false when text is not valid base64.
//
// Valid means RFC 4648's base64 exactly: whole quanta of four characters, padding only at the
// end, no line breaks. The decoder alone would skip line breaks, and, reading in chunks, take
// padding that ends a chunk for the end of a quantum and go on; PostgreSQL's decode(), which
// stores the file, reads both differently, and the stored bytes must be the ones checked here.
func scanBase64(text []byte, max int64) (c messaging.Content, ok bool) {
	if len(text)%4 != 0 || bytes.IndexByte(text, '\n') >= 0 || bytes.IndexByte(text, '\r') >= 0 {
		return messaging.Content{}, false
	}
	if pad := bytes.IndexByte(text, '='); pad >= 0 && pad < len(text)-2 {
		return messaging.Content{}, false
	}
	dec := base64.NewDecoder(base64.StdEncoding, bytes.NewReader(text))
	h := sha256.New()
	buf := make([]byte, 32<<10)
	head := make([]byte, 0, 512)
	for c.Size <= max {
		n, err := dec.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if len(head) < cap(head) {
				head = append(head, buf[:min(n, cap(head)-len(head))]...)
			}
			c.Size += int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return messaging.Content{}, false
		}
	}
	copy(c.SHA256[:], h.Sum(nil))
	c.SniffedType, _, _ = strings.Cut(http.DetectContentType(head), ";")
	c.Base64 = text
	return c, true
}

// parseFileSize reads file_size: a JSON integer.
func parseFileSize(raw json.RawMessage) (int64, error) {
	if absent(raw) || string(raw) == `""` { // empty, as for the other fields
		return 0, messaging.Missing("file_size")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || !allDigits(string(raw)) {
		return 0, messaging.Invalid("file_size")
	}
	return n, nil
}

// requiredUUID reads a UUID string that must be given.
func requiredUUID(raw json.RawMessage, field string) (uuid.UUID, error) {
	id, given, err := parseUUID(raw, field)
	if err == nil && !given {
		err = messaging.Missing(field)
	}
	return id, err
}

// requiredString reads a JSON string that must be given and not be empty.
func requiredString(raw json.RawMessage, field string) (string, error) {
	text, err := parseString(raw, field)
	if err == nil && text == "" {
		err = messaging.Missing(field)
	}
	return text, err
}

type attachmentBody struct {
	Accommodation json.RawMessage `json:"accommodation"`
	Conversation  json.RawMessage `json:"conversation"`
	Attachment    json.RawMessage `json:"attachment"`
}

func (b attachmentBody) parse() (messaging.ConversationRef, uuid.UUID, error) {
	var f messaging.ValidationErrors
	var ref messaging.ConversationRef
	var err error
	ref.AccommodationID, err = parseAccommodation(b.Accommodation, "accommodation")
	f.Add(err)
	f.Add(parseConversation(b.Conversation, true, &ref))
	id, err := requiredUUID(b.Attachment, "attachment")
	f.Add(err)
	return ref, id, f.Err()
}

// metadata answers both versions alike: data.metadata.
func (s *Server) metadata(c echo.Context) error {
	var b attachmentBody
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	ref, id, err := b.parse()
	if err != nil {
		return err
	}
	a, err := s.svc.AttachmentMetadata(c.Request().Context(), callerOf(c), ref, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.MetadataData]{RequestID: requestID(c), Data: api.MetadataData{
		Metadata: api.AttachmentMetadata{FileName: a.FileName, FileType: a.FileType, FileSize: a.Size},
	}})
}

// download answers data.conversation and data.file_content, and in 3.2 data.attachment too.
func (s *Server) download(v version) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b attachmentBody
		if err := s.bindBody(c, &b); err != nil {
			return err
		}
		ref, id, err := b.parse()
		if err != nil {
			return err
		}
		a, content, err := s.svc.DownloadAttachment(c.Request().Context(), callerOf(c), ref, id)
		if err != nil {
			return err
		}
		return writeDownload(c, v, a, content)
	}
}

// writeDownload writes the download answer (api.DownloadData31 or api.DownloadData32 in the
// success envelope) with the file base64-encoded straight into the response, rather than
// building the whole answer, a third larger than the file, in memory first.
func writeDownload(c echo.Context, v version, a messaging.Attachment, content []byte) error {
	reqID, err := json.Marshal(requestID(c))
	if err != nil {
		return err
	}
	var prefix bytes.Buffer
	prefix.WriteString(`{"request_id":`)
	prefix.Write(reqID)
	prefix.WriteString(`,"data":{`)
	if v == v32 {
		prefix.WriteString(`"attachment":"` + a.ID.String() + `",`)
	}
	prefix.WriteString(`"conversation":"` + a.ConversationID.String() + `","file_content":"`)
	const suffix = "\"}}\n"

	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set(echo.HeaderContentLength, strconv.Itoa(prefix.Len()+base64.StdEncoding.EncodedLen(len(content))+len(suffix)))
	c.Response().WriteHeader(http.StatusOK)
	w := bufio.NewWriterSize(c.Response(), 32<<10)
	_, _ = w.Write(prefix.Bytes())
	enc := base64.NewEncoder(base64.StdEncoding, w)
	_, _ = enc.Write(content)
	_ = enc.Close()
	_, _ = w.WriteString(suffix)
	// A write error means the client went away; the status is sent already, so there is
	// nothing left to answer.
	_ = w.Flush()
	return nil
}
