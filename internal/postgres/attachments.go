package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// attachmentColumns are the columns of attachmentRow: everything but the bytes.
const attachmentColumns = `
id, conversation_id, uploader_id, file_name, file_type, file_size, sha256, created_at, referenced_at`

type attachmentRow struct {
	ID             uuid.UUID    `db:"id"`
	ConversationID uuid.UUID    `db:"conversation_id"`
	UploaderID     int64        `db:"uploader_id"`
	FileName       string       `db:"file_name"`
	FileType       string       `db:"file_type"`
	FileSize       int64        `db:"file_size"`
	SHA256         []byte       `db:"sha256"`
	CreatedAt      time.Time    `db:"created_at"`
	ReferencedAt   sql.NullTime `db:"referenced_at"`
}

func (r attachmentRow) domain() messaging.Attachment {
	a := messaging.Attachment{
		ID: r.ID, ConversationID: r.ConversationID, UploaderID: r.UploaderID, FileName: r.FileName,
		FileType: r.FileType, Size: r.FileSize, CreatedAt: r.CreatedAt.UTC(),
	}
	copy(a.SHA256[:], r.SHA256)
	if r.ReferencedAt.Valid {
		a.ReferencedAt = r.ReferencedAt.Time.UTC()
	}
	return a
}

// insertAttachmentSQL takes the bytes base64-encoded ($8, a text parameter) and decodes them in
// the database: lib/pq sends a []byte text parameter as it is, whereas a bytea parameter would be
// hex-encoded to twice the file's size first, and held twice more while being sent.
const insertAttachmentSQL = `
INSERT INTO attachments (id, conversation_id, uploader_id, file_name, file_type, file_size, sha256, created_at, content)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, decode($9, 'base64'))`

// InsertAttachment stores a with the bytes that encoded, standard base64, holds.
// Errors: messaging.ErrNotFound (the conversation is gone), messaging.ErrUnavailable.
func (s *Store) InsertAttachment(ctx context.Context, a messaging.Attachment, encoded []byte) error {
	_, err := s.db.ExecContext(ctx, insertAttachmentSQL, a.ID, a.ConversationID, a.UploaderID,
		a.FileName, a.FileType, a.Size, a.SHA256[:], a.CreatedAt, encoded)
	if isForeignKeyViolation(err) {
		return messaging.ErrNotFound
	}
	return translate(err)
}

const attachmentsSQL = `
SELECT ` + attachmentColumns + `
FROM attachments
WHERE conversation_id = $1 AND id = ANY($2::uuid[])`

// Attachments returns the metadata of those of ids that belong to conversation convID.
// Errors: messaging.ErrUnavailable.
func (s *Store) Attachments(ctx context.Context, convID uuid.UUID, ids []uuid.UUID) ([]messaging.Attachment, error) {
	rows, err := s.db.QueryxContext(ctx, attachmentsSQL, convID, uuidArray(ids))
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []messaging.Attachment
	for rows.Next() {
		var r attachmentRow
		if err := rows.StructScan(&r); err != nil {
			return nil, translate(err)
		}
		out = append(out, r.domain())
	}
	return out, translate(rows.Err())
}

const attachmentContentSQL = `
SELECT ` + attachmentColumns + `, content
FROM attachments
WHERE conversation_id = $1 AND id = $2`

// AttachmentContent returns attachment id of conversation convID with its bytes.
// Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) AttachmentContent(ctx context.Context, convID, id uuid.UUID) (messaging.Attachment, []byte, error) {
	var r struct {
		attachmentRow
		Content []byte `db:"content"`
	}
	if err := s.db.QueryRowxContext(ctx, attachmentContentSQL, convID, id).StructScan(&r); err != nil {
		return messaging.Attachment{}, nil, translate(err)
	}
	return r.attachmentRow.domain(), r.Content, nil
}

// deleteOrphanAttachmentsSQL skips rows a send is marking referenced at this moment; the lock
// makes a concurrent mark wait, and FOR UPDATE re-checks referenced_at on the row it waited for.
const deleteOrphanAttachmentsSQL = `
DELETE FROM attachments
WHERE id IN (
    SELECT id FROM attachments
    WHERE referenced_at IS NULL AND created_at <= $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)`

// DeleteOrphanAttachments deletes up to limit attachments no message references, created at or
// before cutoff, and reports how many. Errors: messaging.ErrUnavailable.
func (s *Store) DeleteOrphanAttachments(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	return s.exec(ctx, deleteOrphanAttachmentsSQL, cutoff, limit)
}

func isForeignKeyViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23503"
}
