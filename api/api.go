// Package api is the wire contract of the messaging service in Go: the request and response
// bodies of the partner API (3.1 and 3.2-beta shapes) and the admin API, the error envelope,
// and a small typed client. Timestamps are strings in TimeFormat; accommodation and
// reservation ids are strings on output.
package api

// TimeFormat is the wire format of every timestamp: UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Response is the success envelope: {"request_id": ..., "data": ...}.
type Response[T any] struct {
	RequestID string `json:"request_id"`
	Data      T      `json:"data"`
}

// ErrorResponse is the error envelope.
type ErrorResponse struct {
	RequestID string      `json:"request_id"`
	Errors    []ErrorItem `json:"errors"`
}

// ErrorItem is one problem: a stable id and a human message.
type ErrorItem struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Error ids of the contract.
const (
	ErrInvalidRequest           = "invalid_request"
	ErrMissingParameter         = "missing_parameter"
	ErrInvalidParameter         = "invalid_parameter"
	ErrConflictingParameters    = "conflicting_parameters"
	ErrUnauthorized             = "unauthorized"
	ErrForbidden                = "forbidden"
	ErrNotFound                 = "not_found"
	ErrMethodNotAllowed         = "method_not_allowed"
	ErrConflict                 = "conflict"
	ErrWindowClosed             = "window_closed"
	ErrIdempotencyKeyReused     = "idempotency_key_reused"
	ErrIdempotencyKeyInProgress = "idempotency_key_in_progress"
	ErrPayloadTooLarge          = "payload_too_large"
	ErrHeadersTooLarge          = "headers_too_large" // the service's own: the contract names no 431
	ErrUnsupportedMediaType     = "unsupported_media_type"
	ErrRateLimited              = "rate_limited"
	ErrInternal                 = "internal_error"
	ErrUnavailable              = "unavailable"
)

// SendRequest is the body of POST /messages/send. Accommodation and Reservation may also be
// sent as JSON integers by other clients; this client sends strings.
type SendRequest struct {
	Accommodation string   `json:"accommodation"`
	Conversation  string   `json:"conversation,omitempty"`
	Reservation   string   `json:"reservation,omitempty"`
	Content       string   `json:"content"`
	Attachments   []string `json:"attachments,omitempty"`
}

// SendData is the data of a send's answer.
type SendData struct {
	Message string `json:"message"`
}

// ConfirmRequest is the body of POST /messages/latest/confirm.
type ConfirmRequest struct {
	Messages []string `json:"messages"`
}

// ConfirmData31 is the data of a 3.1 confirm answer.
type ConfirmData31 struct {
	ConfirmedMessages []string `json:"confirmed_messages"`
}

// ConfirmResponse32 is the whole 3.2 confirm answer, which has no data wrapper.
type ConfirmResponse32 struct {
	RequestID         string   `json:"request_id"`
	ConfirmedMessages []string `json:"confirmedMessages"`
}

// ConversationRequest is the body of POST /messages/conversations.
type ConversationRequest struct {
	Accommodation string `json:"accommodation"`
	Conversation  string `json:"conversation,omitempty"`
	Reservation   string `json:"reservation,omitempty"`
}

// ConversationRef names a conversation in a latest item.
type ConversationRef struct {
	ID            string `json:"id"`
	Accommodation string `json:"accommodation"`
	Reservation   string `json:"reservation"`
}

// ParticipantMetadata describes a participant; Name is omitted when unknown.
type ParticipantMetadata struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// Sender31 is the sender of a 3.1 latest item.
type Sender31 struct {
	ParticipantID string              `json:"participant_id"`
	Metadata      ParticipantMetadata `json:"metadata"`
}

// Sender32 is the sender of a 3.2 latest item.
type Sender32 struct {
	Participant string              `json:"participant"`
	Metadata    ParticipantMetadata `json:"metadata"`
}

// LatestMessage31 is one item of a 3.1 latest answer. ReplyTo is always null.
type LatestMessage31 struct {
	MessageID    string          `json:"message_id"`
	ReplyTo      *string         `json:"reply_to"`
	Conversation ConversationRef `json:"conversation"`
	Content      string          `json:"content"`
	Sender       Sender31        `json:"sender"`
	Attachments  []string        `json:"attachments"`
	Timestamp    string          `json:"timestamp"`
}

// LatestMessage32 is one item of a 3.2 latest answer.
type LatestMessage32 struct {
	ID           string          `json:"id"`
	Conversation ConversationRef `json:"conversation"`
	Content      string          `json:"content"`
	Sender       Sender32        `json:"sender"`
	Attachments  []string        `json:"attachments"`
	Timestamp    string          `json:"timestamp"`
}

// LatestData is the data of a latest answer; M is LatestMessage31 or LatestMessage32.
type LatestData[M any] struct {
	Messages []M `json:"messages"`
}

// Participant is one side of a conversation.
type Participant struct {
	ID       string              `json:"id"`
	Metadata ParticipantMetadata `json:"metadata"`
}

// ConversationMessage32 is a message of a 3.2 conversation.
type ConversationMessage32 struct {
	ID          string   `json:"id"`
	Sender      string   `json:"sender"`
	Content     string   `json:"content"`
	Attachments []string `json:"attachments"`
	Timestamp   string   `json:"timestamp"`
}

// ConversationMessage31 is a message of a 3.1 conversation: the 3.2 message with
// "reply_to": null.
type ConversationMessage31 struct {
	ConversationMessage32
	ReplyTo *string `json:"reply_to"`
}

// Conversation states: the caller may send while "open".
const (
	StateOpen     = "open"
	StateReadOnly = "read_only"
)

// Conversation is a whole conversation as the caller sees it, messages oldest first; M is
// ConversationMessage31 or ConversationMessage32. State and the two instants describe the
// caller's own windows.
type Conversation[M any] struct {
	ID               string        `json:"id"`
	Accommodation    string        `json:"accommodation"`
	Reservation      string        `json:"reservation"`
	Messages         []M           `json:"messages"`
	Participants     []Participant `json:"participants"`
	State            string        `json:"state"`
	SendAllowedUntil string        `json:"send_allowed_until"`
	ReadableUntil    string        `json:"readable_until"`
}

// ConversationData31 is the data of a 3.1 conversations answer: one object under "conversations".
type ConversationData31 struct {
	Conversations Conversation[ConversationMessage31] `json:"conversations"`
}

// ConversationData32 is the data of a 3.2 conversations answer.
type ConversationData32 struct {
	Conversation Conversation[ConversationMessage32] `json:"conversation"`
}

// UploadRequest is the body of POST /messages/attachments/upload. FileContent is the file in
// standard base64; FileSize is its decoded length.
type UploadRequest struct {
	Conversation  string `json:"conversation"`
	Accommodation string `json:"accommodation"`
	FileName      string `json:"file_name"`
	FileType      string `json:"file_type"`
	FileSize      int64  `json:"file_size"`
	FileContent   string `json:"file_content"`
}

// UploadData is the data of an upload's answer (both versions).
type UploadData struct {
	Attachment string `json:"attachment"`
}

// AttachmentRequest is the body of POST /messages/attachments/metadata and .../download.
type AttachmentRequest struct {
	Conversation  string `json:"conversation"`
	Accommodation string `json:"accommodation"`
	Attachment    string `json:"attachment"`
}

// AttachmentMetadata describes an attachment.
type AttachmentMetadata struct {
	FileName string `json:"file_name"`
	FileType string `json:"file_type"`
	FileSize int64  `json:"file_size"`
}

// MetadataData is the data of a metadata answer (both versions).
type MetadataData struct {
	Metadata AttachmentMetadata `json:"metadata"`
}

// DownloadData31 is the data of a 3.1 download answer; FileContent is standard base64.
type DownloadData31 struct {
	Conversation string `json:"conversation"`
	FileContent  string `json:"file_content"`
}

// DownloadData32 is the data of a 3.2 download answer, which names the attachment too.
type DownloadData32 struct {
	Attachment   string `json:"attachment"`
	Conversation string `json:"conversation"`
	FileContent  string `json:"file_content"`
}
