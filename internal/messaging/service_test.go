package messaging

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/google/uuid"
)

// TestSendHashIsStable: Idempotency-Key records live 24 hours and more, across deployments, so a
// request must hash as it did when its record was stored. The want is the hash of the code that
// stored records before the nil conversation was told apart.
func TestSendHashIsStable(t *testing.T) {
	in := SendInput{
		Ref: ConversationRef{AccommodationID: 6819547, ConversationID: uuid.MustParse("0190b2a0-0000-7000-8000-000000000001"),
			ReservationID: "4338284887"},
		Content:     "Hello",
		Attachments: []uuid.UUID{uuid.MustParse("0190b2a0-0000-7000-8000-000000000002")},
	}
	if got, want := hex.EncodeToString(in.hash()), "dd828cf83403f2453daa039e89fbe17b3537addaabe6cd14e4e23323544dbe44"; got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
	// The nil conversation names none; a request naming it is another request than one without it.
	byReservation := SendInput{Ref: ConversationRef{AccommodationID: 1, ReservationID: "r"}, Content: "x"}
	withNil := byReservation
	withNil.Ref.NilConversation = true
	if bytes.Equal(byReservation.hash(), withNil.hash()) {
		t.Error("a send naming the nil conversation hashes as one naming no conversation")
	}
}
