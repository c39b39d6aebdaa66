package messaging

import "time"

const day = 24 * time.Hour

// Windows are the durations of §6 of the contract, in whole days.
type Windows struct {
	GuestDays         int // guest may send and read until stay end + GuestDays
	PropertySendDays  int // property may send until stay end + PropertySendDays ...
	PropertyReplyDays int // ... or latest guest message + PropertyReplyDays, if later
	RetentionDays     int // property may read, and data is kept, until stay end + RetentionDays
}

// MaxWindowDays bounds each duration of Windows: 100 years, far below the 106,751 days past
// which a time.Duration of days overflows and a window, or the retention, would turn negative
// (a purge would then delete everything).
const MaxWindowDays = 36_500

// DefaultWindows are the contract's defaults: 66, 7, 14 and 365 days.
var DefaultWindows = Windows{GuestDays: 66, PropertySendDays: 7, PropertyReplyDays: 14, RetentionDays: 365}

// StayEnd is the instant a stay is over: the start of the day after checkout (00:00 UTC) for a
// confirmed reservation, the cancellation instant for a cancelled one. The cancellation instant
// is cut to the milliseconds the wire shows, so that every window edge is one the wire can name.
func StayEnd(r Reservation) time.Time {
	if r.Status == StatusCancelled {
		return r.CancelledAt.UTC().Truncate(time.Millisecond)
	}
	y, m, d := r.Checkout.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// ReadDuration is how long after stay end side s may still read. The guest's window is cut to
// retention: nothing can be read once it is purged.
func (w Windows) ReadDuration(s Side) time.Duration {
	if s == Guest {
		return time.Duration(min(w.GuestDays, w.RetentionDays)) * day
	}
	return time.Duration(w.RetentionDays) * day
}

// ReadableUntil is the instant side s loses read access to c.
func (w Windows) ReadableUntil(c Conversation, s Side) time.Time {
	return c.StayEnd.Add(w.ReadDuration(s))
}

// ReadableStayEndAfter is the earliest stay end that side s can still read at now: a conversation
// is readable exactly when its stay end is after this instant. Queries use it to filter.
func (w Windows) ReadableStayEndAfter(s Side, now time.Time) time.Time {
	return now.Add(-w.ReadDuration(s))
}

// SendAllowedUntil is the instant side s loses the right to send in c. The guest sends for as long
// as it reads; the property until the later of stay end + PropertySendDays and the latest guest
// message + PropertyReplyDays, never past its read window.
func (w Windows) SendAllowedUntil(c Conversation, s Side) time.Time {
	if s == Guest {
		return w.ReadableUntil(c, Guest)
	}
	until := c.StayEnd.Add(time.Duration(w.PropertySendDays) * day)
	if !c.LastGuestMessageAt.IsZero() {
		if reply := c.LastGuestMessageAt.Add(time.Duration(w.PropertyReplyDays) * day); reply.After(until) {
			until = reply
		}
	}
	if read := w.ReadableUntil(c, Property); until.After(read) {
		until = read
	}
	return until
}

// SendOpen is SendAllowedUntil turned around for a query: at a given instant, side s may send in
// a conversation exactly when its stay end is after StayEndAfter and, besides, its stay end is
// after SendStayEndAfter or its latest guest message is after GuestMessageAfter (nil: never).
// Allows is that predicate; the store applies it in SQL.
type SendOpen struct {
	StayEndAfter      time.Time
	SendStayEndAfter  time.Time
	GuestMessageAfter *time.Time
}

// SendOpenAt returns when side s may send at now, as SendOpen.
func (w Windows) SendOpenAt(s Side, now time.Time) SendOpen {
	read := w.ReadableStayEndAfter(s, now)
	if s == Guest {
		return SendOpen{StayEndAfter: read, SendStayEndAfter: read}
	}
	reply := now.Add(-time.Duration(w.PropertyReplyDays) * day)
	return SendOpen{
		StayEndAfter:      read,
		SendStayEndAfter:  now.Add(-time.Duration(w.PropertySendDays) * day),
		GuestMessageAfter: &reply,
	}
}

// Allows reports whether the conversation is open for sending: for the side and instant o was
// made for, it equals now.Before(SendAllowedUntil(c, side)).
func (o SendOpen) Allows(c Conversation) bool {
	replied := o.GuestMessageAfter != nil && !c.LastGuestMessageAt.IsZero() && c.LastGuestMessageAt.After(*o.GuestMessageAfter)
	return c.StayEnd.After(o.StayEndAfter) && (c.StayEnd.After(o.SendStayEndAfter) || replied)
}

// RetentionCutoff is the instant at or before which, at now, a stay end is past retention: such a
// conversation is readable by nobody and is purged.
// It is the property's ReadableStayEndAfter, so the purge removes exactly what nobody may read.
func (w Windows) RetentionCutoff(now time.Time) time.Time {
	return now.Add(-time.Duration(w.RetentionDays) * day)
}

// IdempotencyKeep is how long an Idempotency-Key record is kept at least (§5.1 of the contract).
const IdempotencyKeep = 24 * time.Hour

// IdempotencyCutoff is the instant before which, at now, an Idempotency-Key record was created
// more than IdempotencyKeep ago: the purge removes it. A record therefore lives at least 24 hours
// and at most 24 hours plus one purge interval.
func IdempotencyCutoff(now time.Time) time.Time {
	return now.Add(-IdempotencyKeep)
}
