package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// windowSet is a group of seeded conversations whose stay has ended, each in the same state of
// the contract's windows (§6), for the windows scenario. The bench expects the service to run
// with messaging.DefaultWindows.
type windowSet struct {
	name   string         // the scenario's request kind for it
	sender messaging.Side // who sends to it in the scenario
	status int            // the answer expected: 200, or 409 window_closed
	convs  []benchConv
}

// windowMessages is how many messages each conversation of a windowSet holds.
const windowMessages = 10

// windowSeed is a windowSet before seeding: the stay end and the guest's last message that
// every conversation of the set has.
type windowSeed struct {
	set       windowSet
	stayEnd   time.Time
	lastGuest time.Time
}

// windowSets describes the three sets: stays that ended before the property's own send window
// (stay end + 7 days) but with a recent guest message that keeps it open (+14 days from that
// message); stays that ended long enough ago that both have passed; and the latter again, for
// the guest, who may send until stay end + 66 days. The guest's set is apart from the
// property's closed one because a guest message reopens the property's window.
func windowSets(today time.Time) []windowSeed {
	w := messaging.DefaultWindows
	extendedEnd := today.AddDate(0, 0, -(w.PropertySendDays + 2))
	closedEnd := today.AddDate(0, 0, -(w.PropertySendDays + w.PropertyReplyDays + 10))
	return []windowSeed{
		{windowSet{name: "send-reply", sender: messaging.Property, status: http.StatusOK}, extendedEnd, today.AddDate(0, 0, -w.PropertyReplyDays/2)},
		{windowSet{name: "send-closed", sender: messaging.Property, status: http.StatusConflict}, closedEnd, closedEnd.AddDate(0, 0, 1)},
		{windowSet{name: "send-guest-late", sender: messaging.Guest, status: http.StatusOK}, closedEnd, closedEnd.AddDate(0, 0, 1)},
	}
}

// seedWindows adds the windows scenario's conversations: per set, one for every partner of
// the sending side, each with windowMessages messages ending in the guest's. They are older
// than the main seed and none of their messages is queued. It checks each set's state against
// the domain's own window rules, so that the scenario's expectations follow the contract's.
func seedWindows(ctx context.Context, db *sqlx.DB, sd *seedData, acc func(i int) (id int64, name string, property int), resPrefix string, now time.Time) error {
	today := now.Truncate(24 * time.Hour)
	nProps, nGuests := 0, 0
	for _, p := range sd.partners {
		if p.Kind == messaging.Property {
			nProps++
		} else {
			nGuests++
		}
	}
	type row struct {
		conv      benchConv
		name      string
		stayEnd   time.Time
		lastGuest time.Time
	}
	var rows []row
	for si, s := range windowSets(today) {
		conv := messaging.Conversation{StayEnd: s.stayEnd, LastGuestMessageAt: s.lastGuest}
		open := now.Before(messaging.DefaultWindows.SendAllowedUntil(conv, s.set.sender))
		if open != (s.set.status == http.StatusOK) {
			return fmt.Errorf("windows seed: set %s is not in the state it is meant for", s.set.name)
		}
		n := max(nProps, nGuests)
		for i := 0; i < n; i++ {
			accID, accName, prop := acc(i)
			c := benchConv{ID: uuid.Must(uuid.NewV7()), Reservation: resPrefix + "w" + strconv.Itoa(si) + "-" + strconv.Itoa(i),
				Accommodation: accID, Property: prop, Guest: nProps + i%nGuests, Messages: windowMessages}
			s.set.convs = append(s.set.convs, c)
			rows = append(rows, row{c, accName, s.stayEnd, s.lastGuest})
		}
		sd.windows = append(sd.windows, s.set)
	}
	err := copyRows(ctx, db, "conversations", conversationColumns, len(rows), func(i int) []any {
		r := rows[i]
		checkout := r.stayEnd.AddDate(0, 0, -1) // the stay ends at the start of the day after
		return sd.conversationRow(r.conv, r.name, "Late Guest "+strconv.Itoa(i), checkout.AddDate(0, 0, -3), checkout, r.stayEnd.AddDate(0, 0, -30))
	})
	if err != nil {
		return err
	}
	// Messages an hour apart, alternating, the last one the guest's at lastGuest.
	return copyRows(ctx, db, "messages", messageColumns, len(rows)*windowMessages, func(k int) []any {
		r, j := rows[k/windowMessages], k%windowMessages
		back := windowMessages - 1 - j
		sender := messaging.Guest
		if back%2 == 1 {
			sender = messaging.Property
		}
		id, _ := uuid.NewV7()
		return []any{id, r.conv.ID, string(sender), "Did we leave a charger in room 12? Message " + strconv.Itoa(k), "{}",
			r.lastGuest.Add(-time.Duration(back) * time.Hour)}
	})
}

// windows: clients send into conversations whose stay has ended, in equal shares: the property
// within the 14 days after the guest's last message (200), the property after every window of
// its own has passed (409 window_closed, through the step-by-step send that tells why), and the
// guest within its 66 days (200). Checked afterwards as the send scenario is (a refused send
// must have stored nothing), and every conversation of the closed set still holds only its
// seeded messages; any other answer to a send into a closed window is a wrong answer.
func (l *load) windows(ctx context.Context, n int) ([]scenarioResult, error) {
	if len(l.sd.windows) == 0 {
		return nil, errors.New("no conversations seeded for it")
	}
	seqBefore, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	logs := make([]sendLog, n)
	refused := make([]int, n) // sends into a closed window answered 409 window_closed
	ws, m := l.run(ctx, "windows", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		set := l.sd.windows[w.rng.IntN(len(l.sd.windows))]
		conv := set.convs[w.rng.IntN(len(set.convs))]
		caller := conv.Property
		if set.sender == messaging.Guest {
			caller = conv.Guest
		}
		tag := logs[w.id].tag(w)
		req := api.SendRequest{Accommodation: strconv.FormatInt(conv.Accommodation, 10), Conversation: conv.ID.String(),
			Content: "Late question " + tag}
		m := sent{conv: conv.ID, tag: tag, sender: set.sender}
		_ = w.do(set.name, func() error {
			id, err := w.send(ctx, l.clients[caller], req)
			m.id = id
			if set.status == http.StatusOK {
				logs[w.id].record(m, err)
				return err
			}
			var apiErr *api.Error
			switch {
			case errors.As(err, &apiErr) && apiErr.Status == set.status && apiErr.ID() == "window_closed":
				refused[w.id]++
				return nil
			case err == nil:
				return wrong("send into a closed window answered 200 (message %s)", id)
			case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
				return err // over a running service's rate limit (-url): refused before the handler
			case errors.As(err, &apiErr) && apiErr.Status < 500:
				return wrong("send into a closed window answered %d %s, want %d window_closed", apiErr.Status, apiErr.ID(), set.status)
			}
			logs[w.id].record(m, err) // failed in transit: may it have stored?
			return err
		})
		return false
	})
	checks, err := l.checkSent(ctx, merged(logs), seqBefore, true)
	if err != nil {
		return nil, err
	}
	var closed pq.StringArray
	for _, set := range l.sd.windows {
		if set.status != http.StatusOK {
			for _, c := range set.convs {
				closed = append(closed, c.ID.String())
			}
		}
	}
	var grown int
	if err := l.b.db.GetContext(ctx, &grown, `
SELECT count(*) FROM (SELECT FROM messages WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id HAVING count(*) <> $2) x`,
		closed, windowMessages); err != nil {
		return nil, err
	}
	nRefused := sum(refused)
	checks = append(checks, check{Name: "every send into a closed window refused, storing nothing", OK: nRefused > 0 && grown == 0,
		Detail: fmt.Sprintf("%d answered 409 window_closed; %d of the %d closed conversations hold other than their %d seeded messages",
			nRefused, grown, len(closed), windowMessages)})
	return results("windows", n, ws, m, checks), nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
