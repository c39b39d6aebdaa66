package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is an answer in the error envelope, with its HTTP status.
type Error struct {
	Status    int
	RequestID string
	Errors    []ErrorItem
	// RetryAfter is the answer's Retry-After in seconds, which a 429 rate_limited and a 503
	// unavailable carry: when to try again. Zero when the answer has none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Errors) == 0 {
		return fmt.Sprintf("messaging: HTTP %d", e.Status)
	}
	return fmt.Sprintf("messaging: HTTP %d %s: %s", e.Status, e.Errors[0].ID, e.Errors[0].Message)
}

// ID returns the first error id, or "" when there is none.
func (e *Error) ID() string {
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].ID
}

// Client calls the partner API as one partner, in the 3.1 shapes at /messages/...
// Use Do for the 3.2 shapes or anything else.
type Client struct {
	BaseURL     string // e.g. http://127.0.0.1:8080
	AffiliateID int64
	APIKey      string
	HTTP        *http.Client // http.DefaultClient when nil
}

// Do sends body (JSON-encoded unless nil; an io.Reader is sent as it is, already JSON) with the
// partner's credentials and extra headers, and decodes a 2xx answer into out (when not nil); an
// out of type *[]byte receives the answer's raw bytes instead, read into the slice's own memory
// when it is large enough (so a caller that reads many answers can reuse one buffer). Any other
// answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, header http.Header) error {
	h := http.Header{"Authorization": {"Bearer " + c.APIKey}, "X-Affiliate-Id": {strconv.FormatInt(c.AffiliateID, 10)}}
	for k, v := range header {
		h[k] = v
	}
	return do(ctx, c.HTTP, method, strings.TrimRight(c.BaseURL, "/")+path, body, out, h)
}

// Send posts a message. idempotencyKey may be empty.
func (c *Client) Send(ctx context.Context, req SendRequest, idempotencyKey string) (SendData, error) {
	var h http.Header
	if idempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var resp Response[SendData]
	err := c.Do(ctx, http.MethodPost, "/messages/send", req, &resp, h)
	return resp.Data, err
}

// Latest returns the partner's page of unconfirmed messages, newest first.
func (c *Client) Latest(ctx context.Context) ([]LatestMessage31, error) {
	var resp Response[LatestData[LatestMessage31]]
	err := c.Do(ctx, http.MethodPost, "/messages/latest", nil, &resp, nil)
	return resp.Data.Messages, err
}

// Confirm confirms receipt of messages and returns the ids confirmed now or before.
func (c *Client) Confirm(ctx context.Context, ids []string) ([]string, error) {
	var resp Response[ConfirmData31]
	err := c.Do(ctx, http.MethodPost, "/messages/latest/confirm", ConfirmRequest{Messages: ids}, &resp, nil)
	return resp.Data.ConfirmedMessages, err
}

// Conversation returns a whole conversation.
func (c *Client) Conversation(ctx context.Context, req ConversationRequest) (Conversation[ConversationMessage31], error) {
	var resp Response[ConversationData31]
	err := c.Do(ctx, http.MethodPost, "/messages/conversations", req, &resp, nil)
	return resp.Data.Conversations, err
}

// Upload uploads a file to a conversation and returns the attachment's id.
func (c *Client) Upload(ctx context.Context, req UploadRequest) (string, error) {
	var resp Response[UploadData]
	err := c.Do(ctx, http.MethodPost, "/messages/attachments/upload", req, &resp, nil)
	return resp.Data.Attachment, err
}

// AttachmentMetadata returns an attachment's name, type and size.
func (c *Client) AttachmentMetadata(ctx context.Context, req AttachmentRequest) (AttachmentMetadata, error) {
	var resp Response[MetadataData]
	err := c.Do(ctx, http.MethodPost, "/messages/attachments/metadata", req, &resp, nil)
	return resp.Data.Metadata, err
}

// Download returns an attachment's bytes, decoded.
func (c *Client) Download(ctx context.Context, req AttachmentRequest) ([]byte, error) {
	var resp Response[DownloadData31]
	if err := c.Do(ctx, http.MethodPost, "/messages/attachments/download", req, &resp, nil); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(resp.Data.FileContent)
	if err != nil {
		return nil, fmt.Errorf("decode file_content: %w", err)
	}
	return b, nil
}

// AdminClient calls the admin API with the operator's token.
type AdminClient struct {
	BaseURL string
	Token   string
	HTTP    *http.Client // http.DefaultClient when nil
}

// Do is Client.Do with the admin token.
func (a *AdminClient) Do(ctx context.Context, method, path string, body, out any) error {
	h := http.Header{"Authorization": {"Bearer " + a.Token}}
	return do(ctx, a.HTTP, method, strings.TrimRight(a.BaseURL, "/")+path, body, out, h)
}

// CreatePartner registers a partner.
func (a *AdminClient) CreatePartner(ctx context.Context, req PartnerRequest) (PartnerData, error) {
	var resp Response[PartnerData]
	err := a.Do(ctx, http.MethodPost, "/admin/partners", req, &resp)
	return resp.Data, err
}

// CreateKey issues an API key for a partner.
func (a *AdminClient) CreateKey(ctx context.Context, affiliateID int64, name string) (KeyData, error) {
	var resp Response[KeyData]
	err := a.Do(ctx, http.MethodPost, "/admin/partners/"+strconv.FormatInt(affiliateID, 10)+"/keys", KeyRequest{Name: name}, &resp)
	return resp.Data, err
}

// RevokeKey revokes an API key.
func (a *AdminClient) RevokeKey(ctx context.Context, keyID string) (RevokedKeyData, error) {
	var resp Response[RevokedKeyData]
	err := a.Do(ctx, http.MethodDelete, "/admin/keys/"+url.PathEscape(keyID), nil, &resp)
	return resp.Data, err
}

// PutAccommodation creates or replaces an accommodation.
func (a *AdminClient) PutAccommodation(ctx context.Context, id string, req AccommodationRequest) (AccommodationData, error) {
	var resp Response[AccommodationData]
	err := a.Do(ctx, http.MethodPut, "/admin/accommodations/"+url.PathEscape(id), req, &resp)
	return resp.Data, err
}

// PutReservation creates or updates a reservation and its conversation.
func (a *AdminClient) PutReservation(ctx context.Context, id string, req ReservationRequest) (ReservationData, error) {
	var resp Response[ReservationData]
	err := a.Do(ctx, http.MethodPut, "/admin/reservations/"+url.PathEscape(id), req, &resp)
	return resp.Data, err
}

func do(ctx context.Context, hc *http.Client, method, target string, body, out any, h http.Header) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	var r io.Reader
	if rd, ok := body.(io.Reader); ok {
		r = rd
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return err
	}
	req.Header = h
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &Error{Status: resp.StatusCode}
		if secs, err := strconv.ParseUint(resp.Header.Get("Retry-After"), 10, 32); err == nil {
			apiErr.RetryAfter = time.Duration(secs) * time.Second
		}
		var env ErrorResponse
		if json.NewDecoder(resp.Body).Decode(&env) == nil {
			apiErr.RequestID, apiErr.Errors = env.RequestID, env.Errors
		}
		return apiErr
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if raw, ok := out.(*[]byte); ok {
		*raw, err = readAll(resp, (*raw)[:0])
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// presizeLimit bounds how much readAll allocates on the answer's word alone: past it, the
// buffer grows only as bytes arrive, so a wrong Content-Length cannot exhaust memory. It holds
// the largest answer the service gives (a 1 MiB file, base64 in JSON) several times over.
const presizeLimit = 4 << 20

// readAll appends the body to buf, growing it at most once when the length is announced
// (up to presizeLimit).
func readAll(resp *http.Response, buf []byte) ([]byte, error) {
	if n := min(resp.ContentLength, presizeLimit); n > 0 && int64(cap(buf)-len(buf)) < n+1 {
		buf = append(make([]byte, 0, int64(len(buf))+n+1), buf...) // +1: room to see EOF
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
