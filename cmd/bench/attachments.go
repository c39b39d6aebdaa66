package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
)

// pngSignature opens every file the bench uploads, so that the service's content sniffing
// takes it for the PNG it is declared as.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// uploadFile is the file a worker uploads k-th: the PNG signature, the worker and k (which
// make every file different), then size-24 bytes that are random, as compressed image data
// is, and the same for all of the worker's files. The first 24 bytes are exactly 32 characters
// of base64, so a worker encodes its file once and rewrites those 32 characters per upload.
func uploadFile(worker, k, size int) []byte {
	f := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(worker), byte(worker >> 8), byte(worker >> 16), 'b', 'e', 'n', 'c', 'h'}).Read(f[24:])
	stampFile(f, worker, k)
	return f
}

func stampFile(f []byte, worker, k int) {
	copy(f, pngSignature)
	binary.BigEndian.PutUint64(f[8:], uint64(worker))
	binary.BigEndian.PutUint64(f[16:], uint64(k))
}

// uploaded is an upload the service answered 200 for, and the message that referenced it
// (empty when that send failed).
type uploaded struct {
	id      string
	conv    uuid.UUID
	worker  int
	k       int
	message string
}

// attachments: each client uploads a -attachment-size PNG to a random conversation as its
// guest or property, sends a message that references it, and downloads it as the other side,
// which must get the very bytes. Checked afterwards: every upload answered 200 is stored once,
// in its conversation, with the bytes sent (their SHA-256 as PostgreSQL computes it from the
// stored content), and marked referenced; every message answered 200 references exactly its
// upload, and is checked as in the send scenario; no upload was stored without a 200 beyond
// the uploads that failed.
func (l *load) attachments(ctx context.Context, n int) ([]scenarioResult, error) {
	size := l.b.opt.attachmentSize
	started := time.Now().Add(-time.Second) // uploads are stored after this, by the service's clock (this machine's)
	seqBefore, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	type state struct {
		encoded []byte // the worker's file in base64; its first 32 characters change per upload
		head    []byte // the first 24 bytes of the current file
		tries   int    // uploads made: each one's k, which names and stamps its file
		done    []uploaded
		maybe   []string // names of the uploads that failed in transit
	}
	states, logs := make([]*state, n), make([]sendLog, n)
	for i := range states {
		f := uploadFile(i, 0, size)
		states[i] = &state{encoded: base64.StdEncoding.AppendEncode(nil, f), head: f[:24:24]}
	}
	ws, m := l.run(ctx, "attachments", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		st := states[w.id]
		conv := l.sd.convs[w.rng.IntN(len(l.sd.convs))]
		caller, reader := conv.Property, conv.Guest
		if w.rng.IntN(2) == 0 {
			caller, reader = reader, caller
		}
		k := st.tries
		st.tries++
		stampFile(st.head, w.id, k)
		base64.StdEncoding.Encode(st.encoded[:32], st.head)
		acc := strconv.FormatInt(conv.Accommodation, 10)
		// A new body per upload: the transport may still hold the last one after an answer.
		b := append(make([]byte, 0, len(st.encoded)+256), `{"conversation":"`...)
		b = append(b, conv.ID.String()...)
		b = append(b, `","accommodation":"`...)
		b = append(b, acc...)
		b = fmt.Appendf(b, `","file_name":"%s","file_type":"image/png","file_size":%d,"file_content":"`, uploadName(w.id, k), size)
		b = append(b, st.encoded...)
		b = append(b, `"}`...)
		var up api.Response[api.UploadData]
		if err := w.do("upload", func() error {
			return l.clients[caller].Do(ctx, http.MethodPost, "/messages/attachments/upload", bytes.NewReader(b), &up, nil)
		}); err != nil {
			if mayHaveStored(err) {
				st.maybe = append(st.maybe, uploadName(w.id, k))
			}
			return false
		}
		u := uploaded{id: up.Data.Attachment, conv: conv.ID, worker: w.id, k: k}
		tag := logs[w.id].tag(w)
		req := api.SendRequest{Accommodation: acc, Conversation: conv.ID.String(), Attachments: []string{u.id},
			Content: "Here is the photo of the parking entrance " + tag}
		sendErr := w.do("send", func() error {
			var err error
			u.message, err = w.send(ctx, l.clients[caller], req)
			logs[w.id].record(sent{id: u.message, conv: conv.ID, tag: tag, sender: l.sd.partners[caller].Kind}, err)
			return err
		})
		st.done = append(st.done, u)
		if sendErr != nil {
			return false
		}
		_ = w.do("download", func() error {
			areq := api.AttachmentRequest{Conversation: conv.ID.String(), Accommodation: acc, Attachment: u.id}
			if err := l.clients[reader].Do(ctx, http.MethodPost, "/messages/attachments/download", areq, &w.buf, nil); err != nil {
				return err
			}
			const key = `"file_content":"`
			i := bytes.Index(w.buf, []byte(key))
			if i < 0 || !bytes.HasPrefix(w.buf[i+len(key):], st.encoded) || !bytes.HasPrefix(w.buf[i+len(key)+len(st.encoded):], []byte(`"`)) {
				return wrong("download of %s: not the bytes uploaded", u.id)
			}
			return nil
		})
		return false
	})
	var all []uploaded
	var msgs []sent
	var maybe []string
	for _, st := range states {
		maybe = append(maybe, st.maybe...)
		for _, u := range st.done {
			all = append(all, u)
			if u.message != "" {
				msgs = append(msgs, sent{id: u.message, conv: u.conv})
			}
		}
	}
	checks, err := l.checkSent(ctx, merged(logs), seqBefore, true)
	if err != nil {
		return nil, err
	}
	more, err := l.checkAttachments(ctx, all, msgs, started, maybe)
	if err != nil {
		return nil, err
	}
	out := results("attachments", n, ws, m, append(checks, more...))
	return out, nil
}

// uploadName is the file name of worker's k-th upload, unique in the run.
func uploadName(worker, k int) string { return fmt.Sprintf("photo-%d-%d.png", worker, k) }

// checkAttachments reads back every upload answered 200 and the messages answered 200 that
// referenced them, and every upload stored since started, each of which must be one answered
// 200, or one that failed in transit (maybe, by its unique name), once.
func (l *load) checkAttachments(ctx context.Context, all []uploaded, msgs []sent, started time.Time, maybe []string) ([]check, error) {
	size := l.b.opt.attachmentSize
	ids := make([]string, len(all))
	for i, u := range all {
		ids[i] = u.id
	}
	type stored struct {
		Conv       uuid.UUID `db:"conversation_id"`
		SHA256     []byte    `db:"sha256"`
		ContentSHA []byte    `db:"content_sha256"`
		Size       int       `db:"file_size"`
		Referenced bool      `db:"referenced"`
	}
	found := map[string]stored{}
	const batch = 1000
	for from := 0; from < len(ids); from += batch {
		var rows []struct {
			ID string `db:"id"`
			stored
		}
		err := l.b.db.SelectContext(ctx, &rows, `
SELECT id::text AS id, conversation_id, sha256, sha256(content) AS content_sha256, file_size, referenced_at IS NOT NULL AS referenced
FROM attachments WHERE id = ANY($1::uuid[])`, pq.StringArray(ids[from:min(from+batch, len(ids))]))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			found[r.ID] = r.stored
		}
	}
	msgIDs := make([]string, len(msgs))
	for i, m := range msgs {
		msgIDs[i] = m.id
	}
	var refs []struct {
		ID          string         `db:"id"`
		Attachments pq.StringArray `db:"attachments"`
	}
	if err := l.b.db.SelectContext(ctx, &refs, `SELECT id::text AS id, attachments::text[] AS attachments FROM messages WHERE id = ANY($1::uuid[])`, pq.StringArray(msgIDs)); err != nil {
		return nil, err
	}
	refOf := make(map[string][]string, len(refs))
	for _, r := range refs {
		refOf[r.ID] = r.Attachments
	}
	missing, twice, otherBytes, unreferenced, badRef := 0, 0, 0, 0, 0
	files := map[int][]byte{} // each worker's file, stamped per upload
	answered := make(map[string]bool, len(all))
	for _, u := range all {
		if answered[u.id] {
			twice++ // one id answered for two uploads
		}
		answered[u.id] = true
		s, ok := found[u.id]
		if !ok {
			missing++
			continue
		}
		f := files[u.worker]
		if f == nil {
			f = uploadFile(u.worker, u.k, size)
			files[u.worker] = f
		}
		stampFile(f, u.worker, u.k)
		sum := sha256.Sum256(f)
		if s.Conv != u.conv || s.Size != size || !bytes.Equal(s.SHA256, sum[:]) || !bytes.Equal(s.ContentSHA, sum[:]) {
			otherBytes++
		}
		if u.message != "" {
			if !s.Referenced {
				unreferenced++
			}
			if !slices.Equal(refOf[u.message], []string{u.id}) {
				badRef++
			}
		}
	}
	var newRows []struct {
		ID   string `db:"id"`
		Name string `db:"file_name"`
	}
	if err := l.b.db.SelectContext(ctx, &newRows, `SELECT id::text AS id, file_name FROM attachments WHERE created_at >= $1`, started); err != nil {
		return nil, err
	}
	inTransit := make(map[string]bool, len(maybe))
	for _, name := range maybe {
		inTransit[name] = true
	}
	var unexplained []string
	for _, r := range newRows {
		switch {
		case answered[r.ID]:
		case inTransit[r.Name]:
			inTransit[r.Name] = false // one row per upload
		default:
			unexplained = append(unexplained, r.ID+" "+r.Name)
		}
	}
	return []check{
		{Name: "every upload answered 200 stored once with its bytes", OK: len(all) > 0 && missing == 0 && twice == 0 && otherBytes == 0,
			Detail: fmt.Sprintf("%d answered 200 (%d bytes each); %d missing, %d ids answered twice, %d with other bytes, size or conversation", len(all), size, missing, twice, otherBytes)},
		{Name: "every sent message references its upload", OK: len(msgIDs) > 0 && unreferenced == 0 && badRef == 0,
			Detail: fmt.Sprintf("%d messages; %d uploads not marked referenced, %d messages without exactly their upload", len(msgIDs), unreferenced, badRef)},
		{Name: "no upload stored but the 200s", OK: len(unexplained) == 0,
			Detail: fmt.Sprintf("%d new attachments for %d answers of 200 and %d uploads that failed in transit; %d of no such upload%s",
				len(newRows), len(all), len(maybe), len(unexplained), listed(unexplained))},
	}, nil
}
