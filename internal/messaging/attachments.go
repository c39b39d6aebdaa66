package messaging

import (
	"context"
	"mime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Attachment limits and lifetimes.
const (
	// MaxFileNameLength caps an attachment's name, in code points, after any path is removed.
	MaxFileNameLength = 255
	// OrphanAttachmentTTL is how long an upload that no message references stays usable. After
	// it the upload counts as gone (400 in a send, 404 to read), and the purge deletes it once
	// orphanPurgeGrace has passed as well (OrphanAttachmentCutoff).
	OrphanAttachmentTTL = 24 * time.Hour
	// orphanPurgeGrace keeps an expired orphan in the table for a while longer, so that a send
	// that checked its attachments just before they expired (and commits a moment later) can
	// never reference a row the purge has deleted. It only has to exceed a request's lifetime.
	orphanPurgeGrace = time.Hour
)

// AttachmentPolicy is what uploads may be: configuration, with DefaultAttachmentPolicy's values
// unless the operator says otherwise.
type AttachmentPolicy struct {
	Types    []string // allowed media types, lower case, e.g. "image/png"; each must be Sniffable
	MaxBytes int64    // largest file, decoded
}

// DefaultAttachmentPolicy is the contract's default: PNG and JPEG, at most 1 MiB.
var DefaultAttachmentPolicy = AttachmentPolicy{Types: []string{"image/png", "image/jpeg"}, MaxBytes: 1 << 20}

func (p AttachmentPolicy) allows(mediaType string) bool {
	for _, t := range p.Types {
		if t == mediaType {
			return true
		}
	}
	return false
}

// Sniffable reports whether content sniffing (the WHATWG algorithm of Go's
// http.DetectContentType) recognises mediaType by the file's own signature, so that an upload
// can be checked to really be of that type. Only such types can be allowed.
func Sniffable(mediaType string) bool {
	switch mediaType {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "application/pdf":
		return true
	}
	return false
}

// Attachment is a file uploaded to a conversation. Its bytes are kept by the store beside it and
// are read only by a download.
type Attachment struct {
	ID             uuid.UUID
	ConversationID uuid.UUID
	UploaderID     int64 // affiliate id of the partner that uploaded it
	FileName       string
	FileType       string // media type, checked against the bytes
	Size           int64
	SHA256         [32]byte
	CreatedAt      time.Time
	ReferencedAt   time.Time // when a message first referenced it; zero until then
}

// visibleTo reports whether caller, who can read the attachment's conversation, may see it at
// now. Once a message references an attachment it is the conversation's, like the message; until
// then it is a draft only its uploader can see or send, and only within OrphanAttachmentTTL.
func (a Attachment) visibleTo(caller Partner, now time.Time) bool {
	if !a.ReferencedAt.IsZero() {
		return true
	}
	return a.UploaderID == caller.AffiliateID && now.Before(a.CreatedAt.Add(OrphanAttachmentTTL))
}

// Content is what the edge learnt about an upload's bytes while decoding them from the wire,
// without ever holding them decoded: their length, SHA-256 and the media type their signature
// shows. Base64 is their standard base64 encoding, the form in which they travel to the store
// (PostgreSQL decodes it), which keeps a maximum-size upload to a few times its size in memory.
type Content struct {
	Size        int64
	SHA256      [32]byte
	SniffedType string
	Base64      []byte
}

// AttachmentStore keeps attachments: metadata beside the conversations, so that access and
// references are checked in one place, and the bytes, which only InsertAttachment and
// AttachmentContent touch. The PostgreSQL store keeps the bytes in the attachment's own row; an
// object store would take them by wrapping it and keeping the bytes under the attachment's id.
// Methods return ErrNotFound for missing rows and ErrUnavailable when the database cannot be
// reached.
type AttachmentStore interface {
	// InsertAttachment stores a with the bytes base64 encodes.
	InsertAttachment(ctx context.Context, a Attachment, base64 []byte) error
	// Attachments returns the metadata of those of ids that belong to conversation convID.
	Attachments(ctx context.Context, convID uuid.UUID, ids []uuid.UUID) ([]Attachment, error)
	// AttachmentContent returns attachment id of conversation convID with its bytes.
	AttachmentContent(ctx context.Context, convID, id uuid.UUID) (Attachment, []byte, error)
}

// UploadInput is a partner's upload, already decoded from the wire.
type UploadInput struct {
	Ref      ConversationRef // AccommodationID and ConversationID
	FileName string
	FileType string
	FileSize int64 // the size the partner declares
	Content  Content
}

// validate applies the upload rules and returns the cleaned name and media type, or every
// problem found.
func (in UploadInput) validate(p AttachmentPolicy) (name, mediaType string, err error) {
	var errs ValidationErrors
	add := errs.Add
	add(validateAttachmentRef(in.Ref))
	name, nameErr := cleanFileName(in.FileName)
	add(nameErr)
	mediaType, typeErr := p.mediaType(in.FileType)
	add(typeErr)
	sizeOK := in.FileSize > 0 && in.FileSize <= p.MaxBytes
	if !sizeOK {
		add(Invalid("file_size"))
	}
	switch {
	case in.Content.Size == 0:
		add(Missing("file_content"))
	case in.Content.Size > p.MaxBytes:
		add(Invalid("file_content"))
	case sizeOK && in.Content.Size != in.FileSize:
		add(Invalid("file_size"))
	}
	if typeErr == nil && in.Content.Size > 0 && in.Content.SniffedType != mediaType {
		add(Invalid("file_type"))
	}
	return name, mediaType, errs.Err()
}

// mediaType normalises a declared file type and checks that it is allowed.
func (p AttachmentPolicy) mediaType(declared string) (string, error) {
	if strings.TrimSpace(declared) == "" {
		return "", Missing("file_type")
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || !p.allows(mt) {
		return "", Invalid("file_type")
	}
	return mt, nil
}

// cleanFileName keeps a file name without trusting it: only its last path element (after the
// last / or \) is kept and surrounding white space is trimmed. A name with control characters or
// Unicode bidirectional controls (which can disguise an extension), longer than
// MaxFileNameLength code points, or that is nothing, "." or ".." once cleaned, is invalid; it is
// rejected rather than altered so that the partner learns of it.
func cleanFileName(name string) (string, error) {
	if strings.TrimSpace(name) == "" {
		return "", Missing("file_name")
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxFileNameLength {
		return "", Invalid("file_name")
	}
	for _, r := range name {
		if unicode.IsControl(r) || isBidiControl(r) { // U+FFFD is a character like any other
			return "", Invalid("file_name")
		}
	}
	return name, nil
}

func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' ||
		('\u202a' <= r && r <= '\u202e') || ('\u2066' <= r && r <= '\u2069')
}

// byConversation is ref as the attachment endpoints read it: by conversation id alone.
func (ref ConversationRef) byConversation() ConversationRef {
	ref.ReservationID = ""
	return ref
}

func validateAttachmentRef(ref ConversationRef) error {
	if ref.AccommodationID == 0 {
		return Missing("accommodation")
	}
	if ref.ConversationID == uuid.Nil && !ref.NilConversation {
		return Missing("conversation")
	}
	return nil
}

// Upload stores a file in a conversation the caller may send in, and returns its id. The file
// counts as gone after OrphanAttachmentTTL unless a message references it by then. Uploading is
// part of sending, so it follows the send window. Errors: ValidationErrors, ErrNotFound,
// *WindowClosedError, ErrUnavailable.
func (s *Service) Upload(ctx context.Context, caller Caller, in UploadInput) (uuid.UUID, error) {
	name, mediaType, err := in.validate(s.attachments)
	if err != nil {
		return uuid.Nil, err
	}
	now := s.Now()
	conv, side, err := s.resolve(ctx, caller, in.Ref.byConversation(), now)
	if err != nil {
		return uuid.Nil, err
	}
	if until := s.windows.SendAllowedUntil(conv, side); !now.Before(until) {
		return uuid.Nil, &WindowClosedError{ClosedAt: until}
	}
	// A random (v4) id: it is all that protects an unsent upload, so it must not be guessable.
	a := Attachment{
		ID: uuid.New(), ConversationID: conv.ID, UploaderID: caller.AffiliateID, FileName: name,
		FileType: mediaType, Size: in.Content.Size, SHA256: in.Content.SHA256, CreatedAt: now,
	}
	if err := s.store.InsertAttachment(ctx, a, in.Content.Base64); err != nil {
		return uuid.Nil, err
	}
	return a.ID, nil
}

// attachment finds attachment id of the conversation ref names, as caller may see it: unknown,
// foreign, unsent by another partner, expired, and past the caller's read window are all
// ErrNotFound alike; so is the nil UUID, which names none.
func (s *Service) attachment(ctx context.Context, caller Caller, ref ConversationRef, id uuid.UUID, withContent bool) (Attachment, []byte, error) {
	if err := validateAttachmentRef(ref); err != nil {
		return Attachment{}, nil, err
	}
	now := s.Now()
	conv, _, err := s.resolve(ctx, caller, ref.byConversation(), now)
	if err != nil {
		return Attachment{}, nil, err
	}
	// Visibility is decided on the metadata before any bytes are read, so that an attachment the
	// caller may not see costs exactly what an unknown one does.
	found, err := s.store.Attachments(ctx, conv.ID, []uuid.UUID{id})
	if err != nil {
		return Attachment{}, nil, err
	}
	if len(found) == 0 || !found[0].visibleTo(caller.Partner, now) {
		return Attachment{}, nil, ErrNotFound
	}
	if !withContent {
		return found[0], nil, nil
	}
	return s.store.AttachmentContent(ctx, conv.ID, id)
}

// AttachmentMetadata returns an attachment of the conversation ref names, without its bytes.
// Errors: *ValidationError, ErrNotFound, ErrUnavailable.
func (s *Service) AttachmentMetadata(ctx context.Context, caller Caller, ref ConversationRef, id uuid.UUID) (Attachment, error) {
	a, _, err := s.attachment(ctx, caller, ref, id, false)
	return a, err
}

// DownloadAttachment returns an attachment of the conversation ref names with its bytes.
// Errors: *ValidationError, ErrNotFound, ErrUnavailable.
func (s *Service) DownloadAttachment(ctx context.Context, caller Caller, ref ConversationRef, id uuid.UUID) (Attachment, []byte, error) {
	return s.attachment(ctx, caller, ref, id, true)
}

// checkAttachments holds a send's attachment ids to the rules: each names an attachment of the
// message's conversation that the caller may see, at most once. Every bad position is
// reported. It costs one query, and only sends with attachments make it.
func (s *Service) checkAttachments(ctx context.Context, caller Partner, convID uuid.UUID, ids []uuid.UUID, now time.Time) error {
	found, err := s.store.Attachments(ctx, convID, ids)
	if err != nil {
		return err
	}
	byID := make(map[uuid.UUID]Attachment, len(found))
	for _, a := range found {
		byID[a.ID] = a
	}
	var errs ValidationErrors
	seen := make(map[uuid.UUID]bool, len(ids))
	for i, id := range ids {
		a, ok := byID[id]
		if !ok || seen[id] || !a.visibleTo(caller, now) {
			errs = append(errs, &ValidationError{Field: Indexed("attachments", i)})
		}
		seen[id] = true
	}
	return errs.Err()
}

// OrphanAttachmentCutoff is the instant at or before which, at now, an upload that no message
// references was created if the purge may delete it.
func OrphanAttachmentCutoff(now time.Time) time.Time {
	return now.Add(-(OrphanAttachmentTTL + orphanPurgeGrace))
}
